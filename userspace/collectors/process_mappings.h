// The mappings of a process at one moment, with each one's kind and its
// counters from /proc/PID/smaps. Their resident bytes are split into traced
// bytes, inside blocks and mappings that memobserve saw being created, and
// untraced bytes, which existed before tracing or which no probe saw.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "collectors/pagemap.h"
#include "collectors/procfs.h"
#include "model/snapshot.h"

namespace memobserve {

// The kind of one mapping (see MappingInfo::kind). `stack_pointers` are the
// threads' stack pointers: an anonymous mapping that contains one is a
// thread stack.
const char* classify_mapping(const SmapsEntry& entry, const std::vector<std::uint64_t>& stack_pointers);

// The mappings with their kinds and counters. Every resident byte counts as
// untraced until split_traced_residency() moves the traced part.
std::vector<MappingInfo> describe_mappings(const std::vector<SmapsEntry>& entries,
                                           const std::vector<std::uint64_t>& stack_pointers);

// The parts of `traced` that lie inside [start, end). `traced` must be
// sorted and without overlaps, as merge_ranges() returns it.
std::vector<AddressRange> clip_ranges(const std::vector<AddressRange>& traced, std::uint64_t start,
                                      std::uint64_t end);

// Sets the traced and untraced resident bytes of each mapping: the bytes of
// `traced` (live blocks and mappings seen being created, in any order) that
// `pagemap` reports present, at most the mapping's RSS, and the rest of the
// RSS.
void split_traced_residency(std::vector<MappingInfo>& mappings, std::vector<AddressRange> traced,
                            Pagemap& pagemap);

// Reads smaps, the threads' stack pointers and, where traced ranges overlap a
// mapping, pagemap. Empty optional when the process no longer exists. Throws
// Error when a file cannot be read or parsed.
std::optional<std::vector<MappingInfo>> read_process_mappings(int pid, std::vector<AddressRange> traced,
                                                               std::uint64_t page_size);

}  // namespace memobserve
