// Text rendering of the processes' mappings in a snapshot: how resident
// memory splits into what traced sites hold and what predates tracing or no
// probe saw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "model/snapshot.h"

namespace memobserve {

// Untraced resident bytes over every mapping of every process, by mapping
// kind. Empty optional when no process has mappings (a snapshot of the live
// view or of a memobserve version before mappings existed).
std::optional<std::map<std::string, std::uint64_t>> untraced_by_kind(const Snapshot& snapshot);

// One summary line: untraced resident bytes, the RSS of the processes with
// mappings, and the kinds that hold the untraced bytes.
std::string render_untraced_summary(const Snapshot& snapshot);

// For the `max_processes` processes with the largest RSS, their `rows`
// largest mappings by RSS: kind, RSS, untraced resident, size and path.
std::string render_mappings(const Snapshot& snapshot, std::size_t max_processes, std::size_t rows);

}  // namespace memobserve
