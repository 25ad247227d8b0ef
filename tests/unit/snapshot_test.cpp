#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "model/snapshot.h"
#include "snapshot_schema.h"
#include "util/error.h"
#include "views/text.h"

using namespace memobserve;

namespace {

Snapshot sample_snapshot() {
    Snapshot snapshot;
    snapshot.taken_at = "2026-12-04T20:01:26Z";
    snapshot.duration_s = 2.5;
    snapshot.host = {"6.18.0", 4096};
    ProcessInfo process;
    process.pid = 42;
    process.comm = "service";
    process.cmdline = "service --port 1";
    process.memory.rss_bytes = 3 * 1024 * 1024;
    process.cgroup = CgroupMemory{"/a/b", 1000, std::nullopt};
    process.allocators.push_back({"/usr/lib/libc.so.6", "malloc", true, ""});
    process.mappings.push_back({"heap", 0x55d0c1000000, 0x55d0c1021000, "rw-p", "[heap]", 132 * 1024,
                                120 * 1024, 100 * 1024, 96 * 1024, 8 * 1024, 80 * 1024, 40 * 1024});
    process.mappings.push_back({"anonymous", 0x7f3a10000000, 0x7f3a14000000, "rw-p", "", 64 << 20, 2 << 20,
                                2 << 20, 2 << 20, 0, 0, 2 << 20});
    snapshot.processes.push_back(process);

    Site site;
    site.pid = 42;
    site.frames.push_back({0x1000, "malloc", "/usr/lib/libc.so.6", 0, "", 0});
    site.frames.push_back({0x2000, "leak(int)", "/srv/service", 0x1f, "leak.cpp", 12});
    site.counters.allocated_bytes = 512;
    site.counters.allocations = 2;
    site.counters.resident_bytes = 4096;
    snapshot.sites.push_back(site);
    snapshot.totals = site.counters;
    snapshot.drops.stack_collisions = 3;
    return snapshot;
}

}  // namespace

TEST_CASE("snapshot JSON round trip", "[snapshot]") {
    Snapshot original = sample_snapshot();
    nlohmann::json document = to_json(original);
    memobserve::testing::check_snapshot_schema(document);
    CHECK(document.at("schema") == "memobserve.snapshot/1");
    CHECK(document.at("processes").at(0).at("cgroup").at("memory_max_bytes").is_null());

    Snapshot copy = snapshot_from_json(nlohmann::json::parse(document.dump()));
    CHECK(copy.taken_at == original.taken_at);
    REQUIRE(copy.processes.size() == 1);
    CHECK(copy.processes[0].cgroup->memory_current_bytes == 1000u);
    CHECK_FALSE(copy.processes[0].cgroup->memory_max_bytes.has_value());
    REQUIRE(copy.sites.size() == 1);
    CHECK(copy.sites[0].frames[1].symbol == "leak(int)");
    CHECK(copy.sites[0].frames[1].line == 12);
    CHECK(copy.sites[0].frames[0].file.empty());
    CHECK(copy.sites[0].counters.allocated_bytes == 512);
    CHECK(copy.drops.stack_collisions == 3);
    CHECK(to_json(copy) == document);
}

TEST_CASE("snapshot mappings round trip", "[snapshot]") {
    nlohmann::json document = to_json(sample_snapshot());
    const nlohmann::json& heap = document.at("processes").at(0).at("mappings").at(0);
    CHECK(heap.at("kind") == "heap");
    CHECK(heap.at("start") == 0x55d0c1000000);
    CHECK(heap.at("path") == "[heap]");
    CHECK(heap.at("traced_resident_bytes") == 80 * 1024);
    CHECK(heap.at("untraced_resident_bytes") == 40 * 1024);
    // Anonymous memory has no path: null, as every unknown text field.
    CHECK(document.at("processes").at(0).at("mappings").at(1).at("path").is_null());

    Snapshot copy = snapshot_from_json(document);
    REQUIRE(copy.processes.at(0).mappings.size() == 2);
    const MappingInfo& mapping = copy.processes[0].mappings[0];
    CHECK(mapping.end == 0x55d0c1021000);
    CHECK(mapping.permissions == "rw-p");
    CHECK(mapping.size_bytes == 132 * 1024);
    CHECK(mapping.rss_bytes == 120 * 1024);
    CHECK(mapping.pss_bytes == 100 * 1024);
    CHECK(mapping.uss_bytes == 96 * 1024);
    CHECK(mapping.swap_bytes == 8 * 1024);
    CHECK(copy.processes[0].mappings[1].path.empty());
}

TEST_CASE("snapshot without mappings still reads", "[snapshot]") {
    // Files written before mappings existed have no "mappings" array.
    nlohmann::json document = to_json(sample_snapshot());
    document.at("processes").at(0).erase("mappings");
    Snapshot copy = snapshot_from_json(document);
    REQUIRE(copy.processes.size() == 1);
    CHECK(copy.processes[0].mappings.empty());

    // A mapping with a missing field is rejected, with the field's name.
    document = to_json(sample_snapshot());
    document.at("processes").at(0).at("mappings").at(0).erase("rss_bytes");
    CHECK_THROWS_WITH(snapshot_from_json(document), Catch::Contains("rss_bytes"));
}

TEST_CASE("snapshot of another schema is rejected", "[snapshot]") {
    nlohmann::json document = to_json(sample_snapshot());
    document["schema"] = "memobserve.snapshot/9";
    CHECK_THROWS_WITH(snapshot_from_json(document), Catch::Contains("memobserve.snapshot/9"));
    CHECK_THROWS_AS(snapshot_from_json(nlohmann::json::array()), Error);
    document["schema"] = "memobserve.snapshot/1";
    document.erase("stacks");
    CHECK_THROWS_WITH(snapshot_from_json(document), Catch::Contains("invalid snapshot"));
}

TEST_CASE("byte formatting", "[text]") {
    CHECK(format_bytes(0) == "0 B");
    CHECK(format_bytes(1023) == "1023 B");
    CHECK(format_bytes(1536) == "1.50 KiB");
    CHECK(format_bytes(49 * 1024 * 1024 + 768 * 1024) == "49.75 MiB");
    CHECK(format_bytes(4ULL << 30) == "4.00 GiB");
}

TEST_CASE("site label skips allocator frames", "[text]") {
    Snapshot snapshot = sample_snapshot();
    CHECK(site_label(snapshot.sites[0]) == "leak(int)");
    Site unknown;
    unknown.unknown_stack = true;
    CHECK(site_label(unknown).find("unknown stack") != std::string::npos);
}

TEST_CASE("sort keys", "[text]") {
    SortKey key = SortKey::live;
    CHECK(parse_sort_key("mapped", key));
    CHECK(key == SortKey::mapped);
    CHECK_FALSE(parse_sort_key("rss", key));
}

TEST_CASE("frame chain copies share frames", "[snapshot]") {
    FrameChain original = {{0x1000, "malloc", "/usr/lib/libc.so.6", 0, "", 0},
                           {0x2000, "leak(int)", "/srv/service", 0x1f, "leak.cpp", 12}};
    FrameChain copy = original;
    CHECK(&copy.front() == &original.front());

    // A change to a copy leaves the original as it was.
    copy.push_back({0x3000, "main", "/srv/service", 0x10, "main.cpp", 3});
    CHECK(copy.size() == 3);
    CHECK(original.size() == 2);
    CHECK(original.back().symbol == "leak(int)");
    CHECK(copy.back().symbol == "main");

    FrameChain empty;
    CHECK(empty.empty());
    CHECK(empty.begin() == empty.end());
}
