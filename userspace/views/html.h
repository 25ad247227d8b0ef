// HTML export: one self-contained page with an interactive flame graph of a
// snapshot. Style sheet, script and data are inline, and the page's content
// security policy forbids loading anything else, so it works offline.
#pragma once

#include <string>

#include "model/snapshot.h"

namespace memobserve {

// The graph starts from "all", then one frame per process ("comm (pid)"), then
// the call stack from its outermost frame inward, merged by function name and
// module like the folded export. Every frame carries all five layers
// (allocated, live, mapped, faulted, resident), and the page switches between
// them; resident is shown first.
std::string render_html(const Snapshot& snapshot);

}  // namespace memobserve
