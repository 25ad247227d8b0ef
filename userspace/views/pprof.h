// pprof export: a gzipped profile.proto that `go tool pprof` and other pprof
// viewers read.
#pragma once

#include <string>

#include "model/snapshot.h"

namespace memobserve {

// Sample types, in this order: allocated_space, live_space, mapped_space,
// faulted_space and resident_space in bytes, then allocations and
// live_allocations as counts. resident_space is the default. Each site becomes
// one sample with "pid" and "comm" labels. A site whose stack was not stored
// gets "[unknown stack]" as its outermost frame. Returns the gzip-compressed
// bytes.
std::string render_pprof(const Snapshot& snapshot);

}  // namespace memobserve
