#include "collectors/pagemap.h"

#include <sys/mman.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <set>

#include <catch2/catch.hpp>

#include "util/error.h"

using namespace memobserve;

namespace {

constexpr std::size_t kMappingBytes = 64 << 20;
constexpr std::size_t kTouchedPages = 1000;
// Every 16th page is written, so pages 0, 16, ..., 15984 are present.
constexpr std::size_t kTouchStride = 16;

// A private anonymous mapping with exactly kTouchedPages pages written. THP is
// off for it, so that one write faults in one page and not 2 MiB.
class TouchedMapping {
public:
    TouchedMapping() {
        void* address = mmap(nullptr, kMappingBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(address != MAP_FAILED);
        base_ = static_cast<char*>(address);
        REQUIRE(madvise(base_, kMappingBytes, MADV_NOHUGEPAGE) == 0);
        for (std::size_t i = 0; i < kTouchedPages; ++i)
            base_[i * kTouchStride * page_size] = 1;
    }
    ~TouchedMapping() { munmap(base_ + unmapped_bytes_, kMappingBytes - unmapped_bytes_); }
    TouchedMapping(const TouchedMapping&) = delete;
    TouchedMapping& operator=(const TouchedMapping&) = delete;

    std::uint64_t address(std::size_t offset) const { return reinterpret_cast<std::uint64_t>(base_) + offset; }
    std::uint64_t page_address(std::size_t page) const { return address(page * page_size); }
    static bool is_touched(std::size_t page) { return page % kTouchStride == 0 && page / kTouchStride < kTouchedPages; }

    // Unmaps the first `bytes` of the mapping. The destructor leaves them alone
    // then, because another mapping may have taken their place.
    void unmap_front(std::size_t bytes) {
        REQUIRE(unmapped_bytes_ == 0);
        REQUIRE(munmap(base_, bytes) == 0);
        unmapped_bytes_ = bytes;
    }

    const std::uint64_t page_size = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));

private:
    char* base_ = nullptr;
    std::size_t unmapped_bytes_ = 0;
};

}  // namespace

// Reading one's own pagemap needs no privilege: without CAP_SYS_ADMIN only the
// page frame numbers read as zero, and the present bit is still set.
TEST_CASE("Pagemap counts touched pages", "[pagemap]") {
    TouchedMapping mapping;
    Pagemap pagemap(getpid(), mapping.page_size);

    AddressRange whole{mapping.address(0), mapping.address(kMappingBytes)};
    CHECK(pagemap.resident_bytes({whole}) == kTouchedPages * mapping.page_size);
    CHECK(pagemap.resident_bytes({}) == 0);
}

TEST_CASE("Pagemap partial pages", "[pagemap]") {
    TouchedMapping mapping;
    Pagemap pagemap(getpid(), mapping.page_size);
    const std::uint64_t page = mapping.page_size;

    // Half of present page 16, in its middle.
    std::uint64_t present = mapping.page_address(16);
    CHECK(pagemap.resident_bytes({{present + page / 4, present + page / 4 + page / 2}}) == page / 2);

    // 100 bytes at the end of present page 16, then 100 bytes of absent page 17.
    std::uint64_t boundary = mapping.page_address(17);
    CHECK(pagemap.resident_bytes({{boundary - 100, boundary + 100}}) == 100);

    // Absent page 1 only.
    CHECK(pagemap.resident_bytes({{mapping.page_address(1), mapping.page_address(2)}}) == 0);

    // Two ranges sharing present page 32 without overlapping.
    std::uint64_t shared = mapping.page_address(32);
    CHECK(pagemap.resident_bytes({{shared, shared + 1000}, {shared + 2000, shared + 2500}}) == 1500);
}

TEST_CASE("Pagemap overlapping ranges count once", "[pagemap]") {
    TouchedMapping mapping;
    Pagemap pagemap(getpid(), mapping.page_size);
    const std::uint64_t page = mapping.page_size;
    std::uint64_t present = mapping.page_address(48);

    CHECK(pagemap.resident_bytes({{present, present + 3000}, {present + 1000, present + page}}) == page);
    CHECK(pagemap.resident_bytes({{present, present + page}, {present, present + page}}) == page);

    // Out of order, nested, and an empty and an inverted range that count nothing.
    std::vector<AddressRange> ranges = {
        {mapping.page_address(64), mapping.page_address(65)},
        {present + 100, present + 200},
        {present, present + page},
        {present + 10, present + 10},
        {present + 20, present + 5},
    };
    CHECK(pagemap.resident_bytes(ranges) == 2 * page);
}

TEST_CASE("Pagemap unmapped range", "[pagemap]") {
    TouchedMapping mapping;
    Pagemap pagemap(getpid(), mapping.page_size);

    // Pages 0 to 255 hold 16 touched pages before the munmap.
    std::uint64_t start = mapping.page_address(0);
    std::uint64_t end = mapping.page_address(256);
    REQUIRE(pagemap.resident_bytes({{start, end}}) == 16 * mapping.page_size);

    // A Pagemap keeps what it read: the pages still show as they were.
    mapping.unmap_front(end - start);
    CHECK(pagemap.resident_bytes({{start, end}}) == 16 * mapping.page_size);

    Pagemap after(getpid(), mapping.page_size);
    CHECK(after.resident_bytes({{start, end}}) == 0);
    CHECK(after.resident_bytes({{start, mapping.address(kMappingBytes)}}) ==
          (kTouchedPages - 16) * mapping.page_size);
}

TEST_CASE("Pagemap top of address space", "[pagemap]") {
    TouchedMapping mapping;
    Pagemap pagemap(getpid(), mapping.page_size);

    // Past the end of the user address space the kernel returns no entries.
    std::uint64_t top = UINT64_MAX;
    CHECK(pagemap.resident_bytes({{top - 3 * mapping.page_size, top}}) == 0);
}

TEST_CASE("Pagemap many small ranges", "[pagemap]") {
    TouchedMapping mapping;
    Pagemap pagemap(getpid(), mapping.page_size);

    // 200000 blocks of 48 bytes spread over the whole mapping, as allocations
    // in a heap would be.
    constexpr std::size_t kRanges = 200000;
    constexpr std::uint64_t kBlockBytes = 48;
    const std::uint64_t stride = kMappingBytes / kRanges;
    std::vector<AddressRange> ranges;
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < kRanges; ++i) {
        std::uint64_t offset = i * stride;
        ranges.push_back({mapping.address(offset), mapping.address(offset + kBlockBytes)});
        std::uint64_t first_page = offset / mapping.page_size;
        std::uint64_t last_page = (offset + kBlockBytes - 1) / mapping.page_size;
        for (std::uint64_t page = first_page; page <= last_page; ++page) {
            if (!TouchedMapping::is_touched(page))
                continue;
            std::uint64_t page_start = page * mapping.page_size;
            std::uint64_t covered_start = std::max(offset, page_start);
            std::uint64_t covered_end = std::min(offset + kBlockBytes, page_start + mapping.page_size);
            expected += covered_end - covered_start;
        }
    }
    REQUIRE(expected > 0);

    CHECK(pagemap.resident_bytes(ranges) == expected);
    // 16384 pages fit in one read of at most 65536 entries.
    CHECK(pagemap.read_calls() == 1);

    // Each block alone, as the residency of one site: the pages are read.
    std::uint64_t one_by_one = 0;
    for (const AddressRange& range : ranges)
        one_by_one += pagemap.resident_bytes({range});
    CHECK(one_by_one == expected);
    CHECK(pagemap.read_calls() == 1);
}

TEST_CASE("Pagemap far apart ranges", "[pagemap]") {
    TouchedMapping mapping;
    Pagemap pagemap(getpid(), mapping.page_size);

    // Pages 0 and 15984 are both touched. The gap between them is wider than
    // one read spans, so they take two reads.
    std::vector<AddressRange> ranges = {
        {mapping.page_address(0), mapping.page_address(0) + 64},
        {mapping.page_address(15984), mapping.page_address(15984) + 64},
    };
    CHECK(pagemap.resident_bytes(ranges) == 128);
    CHECK(pagemap.read_calls() == 2);
}

TEST_CASE("Pagemap missing process", "[pagemap]") {
    CHECK_THROWS_WITH(Pagemap(INT_MAX, 4096), Catch::Contains("/proc/2147483647/pagemap"));
    CHECK_THROWS_AS(Pagemap(getpid(), 0), Error);
}
