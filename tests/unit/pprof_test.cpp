#include <stdexcept>

#include <catch2/catch.hpp>

#include "model/snapshot_file.h"
#include "profile.pb.h"
#include "util/error.h"
#include "util/gzip.h"
#include "views/pprof.h"

using namespace memobserve;

namespace {

const std::string kFixture = std::string(FIXTURES_DIR) + "/snapshot/two_processes.json";

pprof::Profile decode(const std::string& gzipped) {
    pprof::Profile profile;
    REQUIRE(profile.ParseFromString(gzip_decompress(gzipped)));
    return profile;
}

const std::string& text(const pprof::Profile& profile, std::int64_t index) {
    REQUIRE(index >= 0);
    REQUIRE(index < profile.string_table_size());
    return profile.string_table(static_cast<int>(index));
}

const pprof::Location& location(const pprof::Profile& profile, std::uint64_t id) {
    for (const auto& candidate : profile.location())
        if (candidate.id() == id)
            return candidate;
    throw std::runtime_error("no location with id " + std::to_string(id));
}

const pprof::Function& function(const pprof::Profile& profile, std::uint64_t id) {
    for (const auto& candidate : profile.function())
        if (candidate.id() == id)
            return candidate;
    throw std::runtime_error("no function with id " + std::to_string(id));
}

// Name of the function at position `index` of a sample's stack (0 is the leaf).
std::string function_name(const pprof::Profile& profile, const pprof::Sample& sample, int index) {
    const pprof::Location& frame = location(profile, sample.location_id(index));
    REQUIRE(frame.line_size() == 1);
    return text(profile, function(profile, frame.line(0).function_id()).name());
}

}  // namespace

TEST_CASE("pprof sample types cover every layer", "[pprof]") {
    pprof::Profile profile = decode(render_pprof(load_snapshot(kFixture)));

    CHECK(profile.string_table(0).empty());
    const std::pair<const char*, const char*> expected[] = {
        {"allocated_space", "bytes"}, {"live_space", "bytes"},   {"mapped_space", "bytes"},
        {"faulted_space", "bytes"},   {"resident_space", "bytes"}, {"allocations", "count"},
        {"live_allocations", "count"}};
    REQUIRE(profile.sample_type_size() == 7);
    for (int i = 0; i < 7; ++i) {
        CHECK(text(profile, profile.sample_type(i).type()) == expected[i].first);
        CHECK(text(profile, profile.sample_type(i).unit()) == expected[i].second);
    }
    CHECK(text(profile, profile.default_sample_type()) == "resident_space");
    CHECK(profile.time_nanos() == 1796414486LL * 1'000'000'000);
    CHECK(profile.duration_nanos() == 5'000'000'000LL);
}

TEST_CASE("pprof samples carry the site counters", "[pprof]") {
    Snapshot snapshot = load_snapshot(kFixture);
    pprof::Profile profile = decode(render_pprof(snapshot));

    REQUIRE(profile.sample_size() == static_cast<int>(snapshot.sites.size()));
    for (int i = 0; i < profile.sample_size(); ++i) {
        const SiteCounters& counters = snapshot.sites[static_cast<std::size_t>(i)].counters;
        const pprof::Sample& sample = profile.sample(i);
        REQUIRE(sample.value_size() == 7);
        CHECK(sample.value(0) == static_cast<std::int64_t>(counters.allocated_bytes));
        CHECK(sample.value(1) == static_cast<std::int64_t>(counters.live_bytes));
        CHECK(sample.value(2) == static_cast<std::int64_t>(counters.mapped_bytes));
        CHECK(sample.value(3) == static_cast<std::int64_t>(counters.faulted_bytes));
        CHECK(sample.value(4) == static_cast<std::int64_t>(counters.resident_bytes));
        CHECK(sample.value(5) == static_cast<std::int64_t>(counters.allocations));
        CHECK(sample.value(6) == static_cast<std::int64_t>(counters.live_allocations));
    }

    const pprof::Sample& first = profile.sample(0);
    REQUIRE(first.label_size() == 2);
    CHECK(text(profile, first.label(0).key()) == "pid");
    CHECK(first.label(0).num() == 101);
    CHECK(text(profile, first.label(1).key()) == "comm");
    CHECK(text(profile, first.label(1).str()) == "api");
}

TEST_CASE("pprof stacks run from leaf to root", "[pprof]") {
    pprof::Profile profile = decode(render_pprof(load_snapshot(kFixture)));
    REQUIRE(profile.sample_size() == 5);

    const pprof::Sample& parse = profile.sample(0);
    REQUIRE(parse.location_id_size() == 3);
    CHECK(function_name(profile, parse, 0) == "malloc");
    CHECK(function_name(profile, parse, 1) == "parse_request");
    CHECK(function_name(profile, parse, 2) == "main");

    const pprof::Location& caller = location(profile, parse.location_id(1));
    CHECK(caller.address() == 94558411243840u);
    CHECK(caller.line(0).line() == 40);
    CHECK(text(profile, function(profile, caller.line(0).function_id()).filename()) == "api.c");
    bool found_mapping = false;
    for (const auto& mapping : profile.mapping()) {
        if (mapping.id() != caller.mapping_id())
            continue;
        found_mapping = true;
        CHECK(text(profile, mapping.filename()) == "/srv/api");
        CHECK(mapping.has_functions());
    }
    CHECK(found_mapping);
    // The program of the first process (comm "api") comes first, so pprof
    // names it in its "File:" header.
    CHECK(text(profile, profile.mapping(0).filename()) == "/srv/api");

    // The same malloc address in two stacks is one location, while "main" at
    // two return addresses is two locations of one function.
    const pprof::Sample& cache = profile.sample(1);
    CHECK(cache.location_id(0) == parse.location_id(0));
    CHECK(cache.location_id(2) != parse.location_id(2));
    CHECK(location(profile, cache.location_id(2)).line(0).function_id() ==
          location(profile, parse.location_id(2)).line(0).function_id());

    const pprof::Sample& unsymbolized = profile.sample(2);
    CHECK(function_name(profile, unsymbolized, 0) == "api+0x1234");

    const pprof::Sample& unknown = profile.sample(4);
    REQUIRE(unknown.location_id_size() == 1);
    CHECK(function_name(profile, unknown, 0) == "[unknown stack]");
}

TEST_CASE("pprof leaves out sites without values", "[pprof]") {
    Snapshot snapshot = load_snapshot(kFixture);
    Site empty;
    empty.pid = 101;
    empty.frames = {{0x10, "idle", "/srv/api", 0, "", 0}};
    snapshot.sites.push_back(empty);
    pprof::Profile profile = decode(render_pprof(snapshot));
    CHECK(profile.sample_size() == 5);
}

TEST_CASE("gzip round trip and truncated data", "[gzip]") {
    std::string data(200000, 'x');
    for (std::size_t i = 0; i < data.size(); i += 7)
        data[i] = static_cast<char>(i % 251);
    std::string compressed = gzip_compress(data);
    REQUIRE(compressed.size() > 2);
    CHECK(static_cast<unsigned char>(compressed[0]) == 0x1f);
    CHECK(static_cast<unsigned char>(compressed[1]) == 0x8b);
    CHECK(gzip_decompress(compressed) == data);

    CHECK_THROWS_AS(gzip_decompress(compressed.substr(0, compressed.size() / 2)), Error);
    CHECK_THROWS_WITH(gzip_decompress("not gzip"), Catch::Contains("invalid gzip data"));
}
