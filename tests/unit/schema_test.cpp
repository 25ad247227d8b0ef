// docs/snapshot.schema.json against documents memobserve writes and against
// broken ones.
#include <unistd.h>

#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "model/snapshot_file.h"
#include "snapshot_schema.h"

using namespace memobserve;
using memobserve::testing::SchemaCheck;
using nlohmann::json;

namespace {

const std::string kFixture = std::string(FIXTURES_DIR) + "/snapshot/two_processes.json";

json fixture_document() {
    std::ifstream file(kFixture);
    return json::parse(file);
}

SchemaCheck validate(const json& document) {
    std::string path = "/tmp/memobserve-unit-" + std::to_string(getpid()) + "-schema.json";
    std::ofstream(path) << document.dump();
    SchemaCheck check = memobserve::testing::validate_snapshot_file(path);
    unlink(path.c_str());
    return check;
}

// False, with a warning, when the validator is missing and the test may skip.
bool have_validator(const char* test_name) {
    SchemaCheck check = validate(fixture_document());
    if (check.validator_found)
        return true;
    if (geteuid() == 0)
        FAIL("JSON Schema validator missing: " << check.messages);
    WARN("SKIPPED " << test_name << ": " << check.messages);
    return false;
}

}  // namespace

TEST_CASE("schema accepts written snapshots", "[schema]") {
    memobserve::testing::check_snapshot_schema(kFixture);
    memobserve::testing::check_snapshot_schema(to_json(load_snapshot(kFixture)));
    memobserve::testing::check_snapshot_schema(to_json(Snapshot{.taken_at = "2026-12-04T20:01:26Z"}));
}

TEST_CASE("schema rejects broken snapshots", "[schema]") {
    if (!have_validator("schema rejects broken snapshots"))
        return;

    struct Case {
        const char* description;
        void (*breaks)(json&);
        const char* message;
    };
    const Case cases[] = {
        {"missing top-level field", [](json& d) { d.erase("stacks"); },
         "'stacks' is a required property"},
        {"missing drop counter", [](json& d) { d["drops"].erase("stack_errors"); },
         "'stack_errors' is a required property"},
        {"size as a string", [](json& d) { d["processes"][0]["memory"]["rss_bytes"] = "12582912"; },
         "'12582912' is not of type 'integer'"},
        {"negative counter", [](json& d) { d["stacks"][0]["resident_bytes"] = -4096; },
         "-4096 is less than the minimum of 0"},
        {"other schema version", [](json& d) { d["schema"] = "memobserve.snapshot/2"; },
         "'memobserve.snapshot/1' was expected"},
        {"timestamp without zone", [](json& d) { d["taken_at"] = "2026-12-04 20:01:26"; },
         "does not match"},
        {"misspelled frame field", [](json& d) { d["stacks"][0]["frames"][0]["lines"] = 3; },
         "'lines' was unexpected"},
        {"line number zero", [](json& d) { d["stacks"][0]["frames"][1]["line"] = 0; },
         "is not valid under any of the given schemas"},
        {"counter missing in totals", [](json& d) { d["totals"].erase("faulted_bytes"); },
         "'faulted_bytes' is a required property"},
        {"process without pid", [](json& d) { d["processes"][1].erase("pid"); },
         "'pid' is a required property"},
        {"process without mappings", [](json& d) { d["processes"][0].erase("mappings"); },
         "'mappings' is a required property"},
        {"unknown mapping kind", [](json& d) { d["processes"][0]["mappings"][0]["kind"] = "code"; },
         "'code' is not one of"},
        {"mapping without untraced bytes",
         [](json& d) { d["processes"][0]["mappings"][1].erase("untraced_resident_bytes"); },
         "'untraced_resident_bytes' is a required property"},
        {"malformed permissions", [](json& d) { d["processes"][0]["mappings"][0]["permissions"] = "rwx"; },
         "does not match"},
    };
    for (const Case& test : cases) {
        json document = fixture_document();
        test.breaks(document);
        SchemaCheck check = validate(document);
        INFO(test.description << ": " << check.messages);
        CHECK_FALSE(check.valid);
        CHECK_THAT(check.messages, Catch::Contains(test.message));
    }
}

TEST_CASE("schema accepts a container snapshot", "[schema]") {
    if (!have_validator("schema accepts a container snapshot"))
        return;
    memobserve::Snapshot snapshot = memobserve::snapshot_from_json(fixture_document());
    snapshot.target = {"cgroup", 4321, "/system.slice/docker-0a1b.scope", "v2", std::string(64, 'a')};
    memobserve::CgroupMemory cgroup;
    cgroup.path = "/system.slice/docker-0a1b.scope";
    cgroup.hierarchy = "v2";
    cgroup.id = 4321;
    cgroup.memory_current_bytes = 300u << 20;
    cgroup.memory_max_bytes = 1u << 30;
    cgroup.stat = {{"anon", 250u << 20}, {"file", 40u << 20}};
    cgroup.events = {{"oom_kill", 1}, {"max", 12}};
    snapshot.cgroups.push_back(cgroup);
    snapshot.processes[0].nspid = 1;
    snapshot.processes[0].cgroup = cgroup;
    snapshot.sites[0].fault_residue = true;
    SchemaCheck check = validate(memobserve::to_json(snapshot));
    INFO(check.messages);
    CHECK(check.valid);

    json wrong_kind = memobserve::to_json(snapshot);
    wrong_kind["target"]["kind"] = "container";
    CHECK_FALSE(validate(wrong_kind).valid);
}
