// `memobserve report --format pprof` read back by `go tool pprof` (Debian's
// golang-go), with the fixture snapshot's numbers as the expected values.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include <catch2/catch.hpp>

#include "model/snapshot_file.h"
#include "snapshot_schema.h"
#include "tools.h"

using namespace memobserve;
using namespace memobserve::testing;

namespace {

const std::string kFixture = std::string(FIXTURES_DIR) + "/snapshot/two_processes.json";

struct TopRow {
    std::string flat;
    std::string function;
};

struct TopOutput {
    std::string total;  // "Total samples = ..." without the label
    TopRow first;
};

// Reads the total and the first table row of `pprof -top`.
TopOutput parse_top(const std::string& text) {
    TopOutput top;
    std::istringstream lines(text);
    std::string line;
    bool in_table = false;
    while (std::getline(lines, line)) {
        std::size_t total_at = line.find("Total samples = ");
        if (total_at != std::string::npos) {
            std::istringstream words(line.substr(total_at + 16));
            words >> top.total;
        }
        if (in_table) {
            std::istringstream words(line);
            std::string flat_percent, sum_percent, cum, cum_percent;
            words >> top.first.flat >> flat_percent >> sum_percent >> cum >> cum_percent;
            std::getline(words >> std::ws, top.first.function);
            break;
        }
        in_table = line.find("flat%") != std::string::npos;
    }
    return top;
}

// Per leaf function (the innermost frame, where pprof puts flat values), the
// sum of one counter over the fixture's sites; returns the largest.
std::pair<std::string, std::uint64_t> top_leaf(const Snapshot& snapshot,
                                               std::uint64_t SiteCounters::*counter) {
    std::map<std::string, std::uint64_t> by_leaf;
    for (const auto& site : snapshot.sites) {
        std::string leaf = site.frames.empty() ? "[unknown stack]" : site.frames[0].symbol;
        by_leaf[leaf] += site.counters.*counter;
    }
    std::pair<std::string, std::uint64_t> top;
    for (const auto& entry : by_leaf)
        if (entry.second > top.second)
            top = entry;
    return top;
}

std::uint64_t total_of(const Snapshot& snapshot, std::uint64_t SiteCounters::*counter) {
    std::uint64_t total = 0;
    for (const auto& site : snapshot.sites)
        total += site.counters.*counter;
    return total;
}

std::string export_fixture(const std::string& name) {
    std::string output = artifacts_dir() + "/" + name;
    unlink(output.c_str());
    CommandResult run = run_command({MEMOBSERVE_BINARY, "report", kFixture, "--format", "pprof", "-o", output});
    INFO("memobserve stderr: " << run.errors);
    REQUIRE(run.exit_code == 0);
    return output;
}

}  // namespace

TEST_CASE("go tool pprof reads the export", "[export][pprof]") {
    if (!require_program("go", "golang-go", "go tool pprof reads the export"))
        return;
    check_snapshot_schema(kFixture);
    Snapshot snapshot = load_snapshot(kFixture);
    std::string profile = export_fixture("two_processes.pb.gz");

    struct Case {
        const char* sample_index;
        std::uint64_t SiteCounters::*counter;
        const char* unit_suffix;  // what pprof appends with -unit=B
    };
    const Case cases[] = {
        {"resident_space", &SiteCounters::resident_bytes, "B"},
        {"allocated_space", &SiteCounters::allocated_bytes, "B"},
        {"mapped_space", &SiteCounters::mapped_bytes, "B"},
        {"allocations", &SiteCounters::allocations, ""},
    };
    for (const Case& test : cases) {
        std::vector<std::string> command = {"go", "tool", "pprof", "-top",
                                            std::string("-sample_index=") + test.sample_index};
        if (*test.unit_suffix != '\0')
            command.push_back("-unit=B");
        command.push_back(profile);
        CommandResult run = run_command(command);
        INFO(test.sample_index << "\npprof output:\n" << run.output << "\npprof errors:\n" << run.errors);
        REQUIRE(run.exit_code == 0);

        TopOutput top = parse_top(run.output);
        auto [function, flat] = top_leaf(snapshot, test.counter);
        CHECK(top.first.function == function);
        CHECK(top.first.flat == std::to_string(flat) + test.unit_suffix);
        CHECK(top.total == std::to_string(total_of(snapshot, test.counter)) + test.unit_suffix);
    }
}

TEST_CASE("go tool pprof shows the resident layer first", "[export][pprof]") {
    if (!require_program("go", "golang-go", "go tool pprof shows the resident layer first"))
        return;
    std::string profile = export_fixture("two_processes-default.pb.gz");
    CommandResult run = run_command({"go", "tool", "pprof", "-top", "-unit=B", profile});
    INFO(run.output << run.errors);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.output, Catch::Contains("Type: resident_space"));
    CHECK(parse_top(run.output).total == "11546624B");
}

TEST_CASE("report rejects bad input for exports", "[export]") {
    std::string output = artifacts_dir() + "/never.pb.gz";
    std::string truncated = artifacts_dir() + "/truncated.json";
    std::string text = read_file(kFixture);
    {
        std::ofstream file(truncated);
        file << text.substr(0, text.size() / 3);
    }

    CommandResult broken = run_command({MEMOBSERVE_BINARY, "report", truncated, "-f", "pprof", "-o", output});
    CHECK(broken.exit_code != 0);
    CHECK_THAT(broken.errors, Catch::Contains(truncated) && Catch::Contains("invalid JSON"));

    CommandResult format = run_command({MEMOBSERVE_BINARY, "report", kFixture, "-f", "svg", "-o", output});
    CHECK(format.exit_code != 0);
    CHECK_THAT(format.errors, Catch::Contains("invalid --format 'svg'") && Catch::Contains("pprof or html"));

    CommandResult directory = run_command(
        {MEMOBSERVE_BINARY, "report", kFixture, "-f", "html", "-o", "/nonexistent-memobserve-dir/x.html"});
    CHECK(directory.exit_code != 0);
    CHECK_THAT(directory.errors, Catch::Contains("does not exist"));

    struct stat status;
    CHECK(stat(output.c_str(), &status) != 0);
    unlink(truncated.c_str());
}
