#include "collectors/pagemap.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include <fmt/format.h>

#include "util/error.h"

namespace memobserve {

namespace {

// Each pagemap entry is 64 bits and describes one page. Bit 63 is set when the
// page is present in RAM, bit 62 when it is swapped out (not counted here).
constexpr std::uint64_t kPresentBit = std::uint64_t{1} << 63;
constexpr std::uint64_t kEntryBytes = sizeof(std::uint64_t);

// Entries per pread: 512 KiB of entries, 256 MiB of address space with 4 KiB pages.
constexpr std::uint64_t kMaxEntriesPerRead = 64 * 1024;

// Largest gap, in pages, that one pread spans between two ranges. Reading a few
// hundred unneeded entries costs less than another system call.
constexpr std::uint64_t kMaxGapPages = 512;

}  // namespace

// Presence bits read from pagemap, kept for the life of the Pagemap so that
// the ranges of many sites on the same pages are read once. A miss reads the
// rest of its merged range and the ranges close after it, in one pread when
// it can.
class Pagemap::EntryCache {
public:
    EntryCache(Pagemap& pagemap, const std::vector<AddressRange>& ranges)
        : pagemap_(pagemap), ranges_(ranges) {}

    // `range_index` is the merged range that contains `page`.
    bool is_present(std::uint64_t page, std::size_t range_index) {
        if (chunk_ == nullptr || page < chunk_first_ || page - chunk_first_ >= chunk_->size())
            find_or_load(page, range_index);
        return (*chunk_)[page - chunk_first_];
    }

private:
    std::uint64_t first_page_of(const AddressRange& range) const {
        return range.start / pagemap_.page_size_;
    }
    std::uint64_t last_page_of(const AddressRange& range) const {
        return (range.end - 1) / pagemap_.page_size_;
    }

    void find_or_load(std::uint64_t page, std::size_t range_index) {
        auto& chunks = pagemap_.present_;
        auto next = chunks.upper_bound(page);
        if (next != chunks.begin()) {
            auto previous = std::prev(next);
            if (page - previous->first < previous->second.size()) {
                chunk_first_ = previous->first;
                chunk_ = &previous->second;
                return;
            }
        }
        std::uint64_t end = read_end(page, range_index);
        // Pages already read stay where they are.
        if (next != chunks.end())
            end = std::min(end, next->first);
        chunk_first_ = page;
        chunk_ = &chunks.emplace(page, load(page, end)).first->second;
    }

    // The page after the last one that a read starting at `page` covers: the
    // rest of this range and of the following ranges that are close enough.
    std::uint64_t read_end(std::uint64_t page, std::size_t range_index) const {
        std::uint64_t limit = page + kMaxEntriesPerRead;
        std::uint64_t end = std::min(limit, last_page_of(ranges_[range_index]) + 1);
        for (std::size_t i = range_index + 1; i < ranges_.size(); ++i) {
            std::uint64_t first = first_page_of(ranges_[i]);
            if (first >= limit || (first > end && first - end > kMaxGapPages))
                break;
            end = std::max(end, std::min(limit, last_page_of(ranges_[i]) + 1));
        }
        return end;
    }

    std::vector<bool> load(std::uint64_t first_page, std::uint64_t end_page) {
        // Entries that the kernel does not return stay 0 (not present). That
        // happens past the end of the user address space and after the process
        // exits, when pread returns 0.
        entries_.assign(end_page - first_page, 0);
        auto* buffer = reinterpret_cast<char*>(entries_.data());
        std::size_t wanted = entries_.size() * kEntryBytes;
        std::size_t done = 0;
        while (done < wanted) {
            auto offset = static_cast<off_t>(first_page * kEntryBytes + done);
            ssize_t count = pread(pagemap_.fd_, buffer + done, wanted - done, offset);
            ++pagemap_.read_calls_;
            if (count < 0 && errno == EINTR)
                continue;
            if (count < 0)
                throw Error(fmt::format("failed to read {}: {}", pagemap_.path_, describe_errno(errno)));
            if (count == 0)
                break;
            done += static_cast<std::size_t>(count);
        }
        std::vector<bool> present(entries_.size());
        for (std::size_t i = 0; i < entries_.size(); ++i)
            present[i] = (entries_[i] & kPresentBit) != 0;
        return present;
    }

    Pagemap& pagemap_;
    const std::vector<AddressRange>& ranges_;
    std::vector<std::uint64_t> entries_;  // read buffer
    std::uint64_t chunk_first_ = 0;
    const std::vector<bool>* chunk_ = nullptr;
};

std::vector<AddressRange> merge_ranges(std::vector<AddressRange> ranges) {
    std::erase_if(ranges, [](const AddressRange& range) { return range.end <= range.start; });
    std::sort(ranges.begin(), ranges.end(),
              [](const AddressRange& a, const AddressRange& b) { return a.start < b.start; });

    std::vector<AddressRange> merged;
    for (const AddressRange& range : ranges) {
        if (!merged.empty() && range.start <= merged.back().end)
            merged.back().end = std::max(merged.back().end, range.end);
        else
            merged.push_back(range);
    }
    return merged;
}

Pagemap::Pagemap(int pid, std::uint64_t page_size)
    : page_size_(page_size), path_(fmt::format("/proc/{}/pagemap", pid)) {
    if (page_size == 0)
        throw Error("invalid page size 0 for reading " + path_);

    fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
        int error = errno;
        std::string hint;
        if (error == EACCES || error == EPERM)
            hint = "run as root";
        throw Error(fmt::format("failed to open {}: {}", path_, describe_errno(error)), hint);
    }
}

Pagemap::~Pagemap() {
    if (fd_ >= 0)
        close(fd_);
}

std::uint64_t Pagemap::resident_bytes(std::vector<AddressRange> ranges) {
    std::vector<AddressRange> merged = merge_ranges(std::move(ranges));
    EntryCache cache(*this, merged);

    std::uint64_t total = 0;
    for (std::size_t i = 0; i < merged.size(); ++i) {
        const AddressRange& range = merged[i];
        std::uint64_t last_page = (range.end - 1) / page_size_;
        for (std::uint64_t page = range.start / page_size_; page <= last_page; ++page) {
            if (!cache.is_present(page, i))
                continue;
            // Written so that the page at the top of the address space, whose
            // end is 2^64, does not overflow.
            std::uint64_t page_start = page * page_size_;
            std::uint64_t covered_start = std::max(range.start, page_start);
            total += std::min(range.end - covered_start, page_size_ - (covered_start - page_start));
        }
    }
    return total;
}

}  // namespace memobserve
