// Ctrl-C, SIGTERM and SIGHUP end a trace through the normal return path, so
// that destructors detach every probe.
#pragma once

namespace memobserve {

void install_stop_handlers();
bool stop_requested();

}  // namespace memobserve
