// C++ allocation patterns with known numbers, one per case name (argv[1]).
#include <cstring>
#include <thread>
#include <vector>

extern "C" {
#include "workload_protocol.h"
}

static int* volatile kept_int;
// One slot per thread: a shared slot would let one thread delete another's block.
static int* volatile churn_slots[256];

// Leaks one int through operator new: `foo` must appear below operator new.
__attribute__((noinline)) void foo() { kept_int = new int(42); }

__attribute__((noinline)) void churn_new_delete(int slot, int pairs) {
    for (int i = 0; i < pairs; ++i) {
        churn_slots[slot] = new int(i);
        delete churn_slots[slot];
    }
}

static void run_threads(int threads, int pairs) {
    std::vector<std::thread> workers;
    for (int i = 0; i < threads && i < 256; ++i)
        workers.emplace_back(churn_new_delete, i, pairs);
    for (auto& worker : workers)
        worker.join();
}

int main(int argc, char** argv) {
    const char* name = argc > 1 ? argv[1] : "";
    wait_for_go();
    if (!std::strcmp(name, "new-leak")) {
        foo();
    } else if (!std::strcmp(name, "threads")) {
        int threads = argc > 2 ? std::atoi(argv[2]) : 30;
        int pairs = argc > 3 ? std::atoi(argv[3]) : 1000000;
        run_threads(threads, pairs);
    } else {
        std::fprintf(stderr, "unknown case '%s'\n", name);
        return 2;
    }
    hold_until_stdin_closes();
    return 0;
}
