#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "model/snapshot_file.h"
#include "views/html.h"

using namespace memobserve;
using nlohmann::json;

namespace {

const std::string kFixture = std::string(FIXTURES_DIR) + "/snapshot/two_processes.json";

std::size_t occurrences(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
        ++count;
    return count;
}

// The JSON of the page's data element, as flamegraph.js reads it.
json page_data(const std::string& html) {
    const std::string opening = "<script type=\"application/json\" id=\"profile-data\">";
    std::size_t start = html.find(opening);
    REQUIRE(start != std::string::npos);
    start += opening.size();
    std::size_t end = html.find("</script>", start);
    REQUIRE(end != std::string::npos);
    return json::parse(html.substr(start, end - start));
}

std::string name_of(const json& data, const json& node) {
    return data.at("strings").at(node.at(0).get<std::size_t>()).get<std::string>();
}

const json& child_named(const json& data, const json& node, const std::string& name) {
    for (const json& child : node.at(3))
        if (name_of(data, child) == name)
            return child;
    throw std::runtime_error("no child frame named " + name);
}

}  // namespace

TEST_CASE("html page loads nothing from outside", "[html]") {
    std::string html = render_html(load_snapshot(kFixture));

    CHECK(html.find("http://") == std::string::npos);
    CHECK(html.find("https://") == std::string::npos);
    CHECK(html.find(" src=") == std::string::npos);
    CHECK(html.find(" href=") == std::string::npos);
    CHECK(html.find("@import") == std::string::npos);
    CHECK(html.find("url(") == std::string::npos);
    CHECK_THAT(html, Catch::Contains("default-src 'none'"));
    CHECK(html.find("@DATA@") == std::string::npos);
    CHECK(html.find("@SCRIPT@") == std::string::npos);
    CHECK(html.find("@STYLE@") == std::string::npos);
}

TEST_CASE("html tree sums the layers per frame", "[html]") {
    Snapshot snapshot = load_snapshot(kFixture);
    json data = page_data(render_html(snapshot));

    CHECK(data.at("layers") == json({"allocated", "live", "mapped", "faulted", "resident"}));
    CHECK(data.at("default_layer") == "resident");
    const json& root = data.at("root");
    CHECK(name_of(data, root) == "all");
    const auto& totals = snapshot.totals;
    CHECK(root.at(2) == json({totals.allocated_bytes, totals.live_bytes, totals.mapped_bytes,
                              totals.faulted_bytes, totals.resident_bytes}));

    const json& api = child_named(data, root, "api (101)");
    const json& main = child_named(data, api, "main");
    // Three sites of the fixture pass through main of pid 101.
    CHECK(main.at(2).at(4) == 6291456 + 2097152 + 4096);
    // Their return addresses lie on lines 90, 92 and 95, so no single line is shown.
    CHECK(data.at("strings").at(main.at(1).get<std::size_t>()) == "/srv/api  api.c");
    const json& parse = child_named(data, main, "parse_request");
    CHECK(data.at("strings").at(parse.at(1).get<std::size_t>()) == "/srv/api  api.c:40");
    CHECK(parse.at(2).at(0) == 8388608);
    child_named(data, main, "api+0x1234");

    const json& worker = child_named(data, root, "worker (202)");
    const json& unknown = child_named(data, worker, "[unknown stack]");
    CHECK(unknown.at(2).at(4) == 8192);
    CHECK(unknown.at(3).empty());
}

TEST_CASE("html data cannot close its script element", "[html]") {
    Snapshot snapshot = load_snapshot(kFixture);
    std::string hostile = "less<int>::operator()</script><script>alert(1)</script>";
    std::vector<Frame> frames(snapshot.sites[0].frames.begin(), snapshot.sites[0].frames.end());
    frames[1].symbol = hostile;
    snapshot.sites[0].frames = std::move(frames);
    std::string html = render_html(snapshot);

    // The closing tags of the data element and of the script element only.
    CHECK(occurrences(html, "</script>") == 2);
    json data = page_data(html);
    const json& api = child_named(data, data.at("root"), "api (101)");
    child_named(data, child_named(data, api, "main"), hostile);
}
