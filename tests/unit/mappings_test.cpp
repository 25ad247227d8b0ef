#include <catch2/catch.hpp>

#include "model/mappings.h"

using namespace memobserve;

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kMiB = 1024 * 1024;

mo_event event_of(std::uint32_t type, std::uint64_t address, std::uint64_t length,
                  std::int32_t stack_id = 7) {
    mo_event event = {};
    event.type = type;
    event.pid = 100;
    event.site = {100, stack_id, 0};
    event.address = address;
    event.length = length;
    event.fd = -1;
    event.flags = 0x22;  // MAP_PRIVATE | MAP_ANONYMOUS
    return event;
}

std::uint64_t mapped_at(const MappingTracker& tracker, std::int32_t stack_id) {
    auto mapped = tracker.mapped_by_site();
    auto found = mapped.find(SiteId{100, stack_id, 0});
    return found == mapped.end() ? 0 : found->second.bytes;
}

}  // namespace

TEST_CASE("mmap and munmap of whole mappings", "[mappings]") {
    MappingTracker tracker(kPage);
    for (std::uint64_t i = 0; i < 100; ++i)
        tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000 + i * 2 * kMiB, kMiB));
    for (std::uint64_t i = 1; i < 100; i += 2)
        tracker.apply(event_of(MO_EVENT_MUNMAP, 0x10000000 + i * 2 * kMiB, kMiB));
    CHECK(mapped_at(tracker, 7) == 50 * kMiB);
}

TEST_CASE("munmap from the middle splits a mapping", "[mappings]") {
    MappingTracker tracker(kPage);
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000, kMiB));
    tracker.apply(event_of(MO_EVENT_MUNMAP, 0x10000000 + 384 * 1024, 256 * 1024));
    CHECK(mapped_at(tracker, 7) == 768 * 1024);
    CHECK(tracker.mapping_count() == 2);

    auto ranges = tracker.ranges_by_site(100)[SiteId{100, 7, 0}];
    REQUIRE(ranges.size() == 2);
    CHECK(ranges[0].end == 0x10000000 + 384 * 1024);
    CHECK(ranges[1].start == 0x10000000 + 640 * 1024);
}

TEST_CASE("munmap across several mappings", "[mappings]") {
    MappingTracker tracker(kPage);
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000, kMiB, 1));
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000 + kMiB, kMiB, 2));
    tracker.apply(event_of(MO_EVENT_MUNMAP, 0x10000000 + kMiB / 2, kMiB));
    CHECK(mapped_at(tracker, 1) == kMiB / 2);
    CHECK(mapped_at(tracker, 2) == kMiB / 2);
}

TEST_CASE("lengths round up to whole pages", "[mappings]") {
    MappingTracker tracker(kPage);
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000, 100));
    CHECK(mapped_at(tracker, 7) == kPage);
}

TEST_CASE("MAP_FIXED over a mapping replaces it", "[mappings]") {
    MappingTracker tracker(kPage);
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000, kMiB, 1));
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000, kMiB / 4, 2));
    CHECK(mapped_at(tracker, 1) == 3 * kMiB / 4);
    CHECK(mapped_at(tracker, 2) == kMiB / 4);
}

TEST_CASE("brk growth and shrink", "[mappings]") {
    MappingTracker tracker(kPage);
    mo_event grow = event_of(MO_EVENT_BRK, 0x600000 + 132 * 1024, 0);
    grow.old_address = 0x600000;
    tracker.apply(grow);
    CHECK(mapped_at(tracker, 7) == 132 * 1024);

    mo_event shrink = event_of(MO_EVENT_BRK, 0x600000 + 32 * 1024, 0, 9);
    shrink.old_address = 0x600000 + 132 * 1024;
    tracker.apply(shrink);
    CHECK(mapped_at(tracker, 7) == 32 * 1024);
}

TEST_CASE("mremap moves a mapping to the new site", "[mappings]") {
    MappingTracker tracker(kPage);
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000, kMiB, 1));
    mo_event move = event_of(MO_EVENT_MREMAP, 0x20000000, 2 * kMiB, 2);
    move.old_address = 0x10000000;
    move.old_length = kMiB;
    tracker.apply(move);
    CHECK(mapped_at(tracker, 1) == 0);
    CHECK(mapped_at(tracker, 2) == 2 * kMiB);
}

TEST_CASE("file-backed mappings are counted apart", "[mappings]") {
    MappingTracker tracker(kPage);
    mo_event file = event_of(MO_EVENT_MMAP, 0x10000000, kMiB);
    file.flags = 0x02;  // MAP_PRIVATE
    file.fd = 3;
    tracker.apply(file);
    tracker.apply(event_of(MO_EVENT_MMAP, 0x20000000, kMiB));
    auto mapped = tracker.mapped_by_site()[SiteId{100, 7, 0}];
    CHECK(mapped.bytes == 2 * kMiB);
    CHECK(mapped.file_bytes == kMiB);
}

TEST_CASE("exec forgets the old address space", "[mappings]") {
    MappingTracker tracker(kPage);
    tracker.apply(event_of(MO_EVENT_MMAP, 0x10000000, kMiB));
    tracker.apply(event_of(MO_EVENT_EXEC, 0, 0));
    CHECK(tracker.mapping_count() == 0);
}
