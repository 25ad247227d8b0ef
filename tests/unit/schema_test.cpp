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

TEST_CASE("schema allows fields added later", "[schema]") {
    if (!have_validator("schema allows fields added later"))
        return;
    json document = fixture_document();
    document["target"] = {{"kind", "cgroup"}, {"path", "/system.slice/api.service"}};
    document["cgroups"] = json::array({{{"path", "/system.slice/api.service"}}});
    document["processes"][0]["nspid"] = json::array({101, 1});
    document["processes"][0]["mappings"] = json::array({{{"kind", "heap"}}});
    SchemaCheck check = validate(document);
    INFO(check.messages);
    CHECK(check.valid);
}
