// Folded stacks for flame graph tools (flamegraph.pl, inferno, speedscope):
// one line per site, frames from the root down joined by ';', a space, and
// the value.
#pragma once

#include <string>

#include "model/snapshot.h"
#include "views/text.h"

namespace memobserve {

// Sites whose value is zero are left out. Each stack starts with the process
// ("comm (pid)") so that processes stay apart.
std::string render_folded(const Snapshot& snapshot, SortKey value);

}  // namespace memobserve
