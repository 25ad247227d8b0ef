// Residency of address ranges from /proc/PID/pagemap. Page frame numbers need
// CAP_SYS_ADMIN, but the present and swapped bits need only the right to read
// the process's memory (PTRACE_MODE_READ), as for the process itself.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace memobserve {

struct AddressRange {
    std::uint64_t start = 0;
    std::uint64_t end = 0;  // exclusive
};

// Sorts `ranges` and merges those that overlap or touch, so that each byte
// lies in one range. Empty ranges are dropped.
std::vector<AddressRange> merge_ranges(std::vector<AddressRange> ranges);

class Pagemap {
public:
    // Opens /proc/PID/pagemap. Throws memobserve::Error when that fails.
    Pagemap(int pid, std::uint64_t page_size);
    ~Pagemap();
    Pagemap(const Pagemap&) = delete;
    Pagemap& operator=(const Pagemap&) = delete;

    // Bytes of [start, end) that lie on pages present in RAM. A page that the
    // range covers only in part counts only the covered bytes. Ranges may be
    // given in any order and may overlap, and each byte is counted once.
    // Pages are read once per Pagemap: open a new one to see later changes.
    std::uint64_t resident_bytes(std::vector<AddressRange> ranges);

    // Number of pread calls made so far, so that tests can check the batching.
    std::uint64_t read_calls() const { return read_calls_; }

private:
    class EntryCache;

    int fd_ = -1;
    std::uint64_t page_size_;
    std::string path_;
    std::uint64_t read_calls_ = 0;
    // Presence of each page read so far, by runs: first page -> one bit per page.
    std::map<std::uint64_t, std::vector<bool>> present_;
};

}  // namespace memobserve
