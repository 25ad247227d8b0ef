#include "util/signals.h"

#include <signal.h>

#include <atomic>

namespace memobserve {

namespace {

std::atomic<bool> stop_flag{false};

void request_stop(int) { stop_flag.store(true); }

}  // namespace

void install_stop_handlers() {
    struct sigaction action = {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    // No SA_RESTART, so a blocking poll returns EINTR and the loop checks the flag.
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP})
        sigaction(signal_number, &action, nullptr);
}

bool stop_requested() { return stop_flag.load(); }

}  // namespace memobserve
