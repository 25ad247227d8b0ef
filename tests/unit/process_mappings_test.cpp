#include "collectors/process_mappings.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include <catch2/catch.hpp>

using namespace memobserve;

namespace {

std::vector<SmapsEntry> crafted_entries() {
    auto text = read_text_file(std::string(FIXTURES_DIR) + "/procfs/smaps_crafted.txt");
    REQUIRE(text);
    return parse_smaps(*text);
}

// A stack pointer inside the crafted thread stack 7f3a08000000-7f3a08800000.
constexpr std::uint64_t kThreadStackPointer = 0x7f3a087ff120;

const std::uint64_t kPageSize = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));

}  // namespace

TEST_CASE("classify_mapping crafted kinds", "[mappings][smaps]") {
    auto entries = crafted_entries();
    REQUIRE(entries.size() == 16);
    std::vector<std::uint64_t> stack_pointers = {kThreadStackPointer};

    const char* expected[] = {
        "heap",       // [heap]
        "anonymous",  // the guard page below the thread stack: no stack pointer inside
        "stack",      // anonymous, contains the thread's stack pointer
        "huge",       // anonymous with AnonHugePages
        "huge",       // hugetlbfs ("ht" in VmFlags), even though mapped shared
        "shared",     // MAP_SHARED anonymous (/dev/zero)
        "shared",     // System V segment
        "shared",     // private mapping of a /dev/shm file
        "shared",     // memfd
        "file",       // private mapping of a library
        "file",       // deleted file with a space in its name
        "anonymous",  // [anon:arena]
        "vdso",       // [vdso]
        "other",      // [uprobes]
        "stack",      // [stack]
        "vdso",       // [vsyscall]
    };
    for (std::size_t i = 0; i < entries.size(); ++i) {
        INFO("mapping " << i << ": " << entries[i].maps.path);
        CHECK(std::string(classify_mapping(entries[i], stack_pointers)) == expected[i]);
    }

    // Without the stack pointer, a thread stack is plain anonymous memory.
    CHECK(std::string(classify_mapping(entries[2], {})) == "anonymous");
    // A stack pointer inside a file mapping does not make it a stack.
    CHECK(std::string(classify_mapping(entries[9], {entries[9].maps.start})) == "file");
}

TEST_CASE("describe_mappings copies counters", "[mappings][smaps]") {
    auto mappings = describe_mappings(crafted_entries(), {kThreadStackPointer});
    REQUIRE(mappings.size() == 16);

    const MappingInfo& heap = mappings[0];
    CHECK(heap.kind == "heap");
    CHECK(heap.start == 0x55d0c1000000);
    CHECK(heap.end == 0x55d0c1021000);
    CHECK(heap.permissions == "rw-p");
    CHECK(heap.size_bytes == 132 * 1024);
    CHECK(heap.rss_bytes == 120 * 1024);
    CHECK(heap.pss_bytes == 120 * 1024);
    CHECK(heap.uss_bytes == 120 * 1024);
    // Nothing traced yet: all of the RSS is untraced.
    CHECK(heap.traced_resident_bytes == 0);
    CHECK(heap.untraced_resident_bytes == 120 * 1024);

    CHECK(mappings[1].permissions == "---p");
    CHECK(mappings[1].path.empty());
    CHECK(mappings[5].permissions == "rw-s");
    CHECK(mappings[5].path == "/dev/zero (deleted)");
    CHECK(mappings[8].swap_bytes == 64 * 1024);
    CHECK(mappings[15].permissions == "--xp");
}

TEST_CASE("clip_ranges keeps the parts inside", "[mappings]") {
    std::vector<AddressRange> traced = {{0x1000, 0x3000}, {0x5000, 0x6000}, {0x8000, 0xa000}};

    auto inside = clip_ranges(traced, 0x2000, 0x9000);
    REQUIRE(inside.size() == 3);
    CHECK(inside[0].start == 0x2000);
    CHECK(inside[0].end == 0x3000);
    CHECK(inside[1].start == 0x5000);
    CHECK(inside[1].end == 0x6000);
    CHECK(inside[2].start == 0x8000);
    CHECK(inside[2].end == 0x9000);

    CHECK(clip_ranges(traced, 0x3000, 0x5000).empty());  // in the gap; ends are exclusive
    CHECK(clip_ranges(traced, 0xa000, 0xb000).empty());
    CHECK(clip_ranges({}, 0, 0x1000).empty());
    auto whole = clip_ranges(traced, 0, UINT64_MAX);
    CHECK(whole.size() == 3);
}

TEST_CASE("read_process_mappings splits traced residency", "[mappings][pagemap]") {
    // 64 pages between two PROT_NONE pages, so that the kernel does not merge
    // the mapping with a neighbor. Pages 0 to 31 are written.
    constexpr std::size_t kPages = 64;
    constexpr std::size_t kWrittenPages = 32;
    void* address = mmap(nullptr, (kPages + 2) * kPageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(address != MAP_FAILED);
    char* base = static_cast<char*>(address) + kPageSize;
    REQUIRE(mprotect(base, kPages * kPageSize, PROT_READ | PROT_WRITE) == 0);
    REQUIRE(madvise(base, kPages * kPageSize, MADV_NOHUGEPAGE) == 0);
    for (std::size_t page = 0; page < kWrittenPages; ++page)
        base[page * kPageSize] = 1;

    // Traced: pages 8 to 15 and 24 to 39, of which 8 + 8 pages are written.
    auto start = reinterpret_cast<std::uint64_t>(base);
    std::vector<AddressRange> traced = {{start + 24 * kPageSize, start + 40 * kPageSize},
                                        {start + 8 * kPageSize, start + 16 * kPageSize}};
    auto mappings = read_process_mappings(static_cast<int>(getpid()), traced, kPageSize);
    REQUIRE(mappings);
    auto found = std::find_if(mappings->begin(), mappings->end(),
                              [&](const MappingInfo& mapping) { return mapping.start == start; });
    REQUIRE(found != mappings->end());
    CHECK(found->end == start + kPages * kPageSize);
    CHECK(found->kind == "anonymous");
    CHECK(found->rss_bytes == kWrittenPages * kPageSize);
    CHECK(found->traced_resident_bytes == 16 * kPageSize);
    CHECK(found->untraced_resident_bytes == 16 * kPageSize);

    // The mappings that no traced range touches keep all of their RSS untraced.
    for (const MappingInfo& mapping : *mappings) {
        if (mapping.start != start)
            CHECK(mapping.traced_resident_bytes == 0);
        CHECK(mapping.traced_resident_bytes + mapping.untraced_resident_bytes == mapping.rss_bytes);
    }
    munmap(address, (kPages + 2) * kPageSize);

    CHECK_FALSE(read_process_mappings(INT_MAX, {}, kPageSize));
}
