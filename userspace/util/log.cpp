#include "util/log.h"

namespace memobserve::log {

namespace {
int current_verbosity = 0;
}

void set_verbosity(int verbosity) { current_verbosity = verbosity; }

bool enabled(Level level) { return static_cast<int>(level) <= current_verbosity; }

}  // namespace memobserve::log
