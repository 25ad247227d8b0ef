#include "views/mapping_table.h"

#include <catch2/catch.hpp>

#include "model/snapshot_file.h"

using namespace memobserve;

namespace {

const std::string kFixture = std::string(FIXTURES_DIR) + "/snapshot/two_processes.json";
constexpr std::uint64_t kMiB = 1024 * 1024;

}  // namespace

TEST_CASE("untraced bytes by mapping kind", "[mapping_table]") {
    auto kinds = untraced_by_kind(load_snapshot(kFixture));
    REQUIRE(kinds);
    CHECK(kinds->at("anonymous") == 5 * kMiB);
    CHECK(kinds->at("heap") == 1 * kMiB);  // 4 MiB resident, 3 MiB of it traced
    CHECK(kinds->at("file") == 2 * kMiB);
    CHECK(kinds->at("stack") == 1 * kMiB);
    CHECK(kinds->size() == 4);

    Snapshot without_mappings = load_snapshot(kFixture);
    for (auto& process : without_mappings.processes)
        process.mappings.clear();
    CHECK_FALSE(untraced_by_kind(without_mappings));
}

TEST_CASE("untraced summary line", "[mapping_table]") {
    std::string text = render_untraced_summary(load_snapshot(kFixture));
    // Only the running process (RSS 12 MiB) has mappings, so the exited one
    // (RSS 4 MiB) is not part of the RSS it compares with.
    CHECK_THAT(text, Catch::StartsWith("  untraced     9.00 MiB  resident outside the blocks and mappings"));
    CHECK_THAT(text, Catch::Contains("(of RSS 12.00 MiB)"));
    CHECK_THAT(text, Catch::Contains(" anonymous 5.00 MiB, file 2.00 MiB, heap 1.00 MiB, stack 1.00 MiB\n"));

    Snapshot without_mappings = load_snapshot(kFixture);
    without_mappings.processes[0].mappings.clear();
    CHECK(render_untraced_summary(without_mappings) ==
          "  untraced  not recorded: the snapshot has no mappings\n");
}

TEST_CASE("mapping table sorted by RSS", "[mapping_table]") {
    Snapshot snapshot = load_snapshot(kFixture);
    std::string text = render_mappings(snapshot, 5, 3);
    INFO(text);
    CHECK_THAT(text, Catch::StartsWith("pid 101 api: 5 mappings, RSS 12.00 MiB, untraced 9.00 MiB\n"));
    std::size_t anonymous = text.find("anonymous  0x7f3a00000000-0x7f3a04000000");
    std::size_t heap = text.find("heap       [heap]");
    REQUIRE(anonymous != std::string::npos);
    REQUIRE(heap != std::string::npos);
    CHECK(anonymous < heap);
    CHECK_THAT(text, Catch::Contains("   5.00 MiB    5.00 MiB   64.00 MiB  anonymous"));
    CHECK_THAT(text, Catch::Contains("   4.00 MiB    1.00 MiB    8.00 MiB  heap"));
    // Three rows. Equal RSS keeps file order, so /srv/api is the third row
    // and libc, also 1 MiB, is cut.
    CHECK_THAT(text, Catch::Contains("file       /srv/api\n"));
    CHECK(text.find("libc.so.6") == std::string::npos);
    CHECK(text.find("pid 202") == std::string::npos);  // exited, no mappings

    for (auto& process : snapshot.processes)
        process.mappings.clear();
    CHECK_THAT(render_mappings(snapshot, 5, 3), Catch::StartsWith("no mappings recorded"));
}
