// `memobserve report --format html` opened in headless Chromium (Debian's
// chromium): the script must build the flame graph from the fixture's numbers,
// react to clicks, the layer selector and the search box, and draw something
// visible. The screenshot stays in the build tree's test-artifacts folder.
#include <unistd.h>

#include <fstream>
#include <set>
#include <tuple>

#include <catch2/catch.hpp>

#include "model/snapshot_file.h"
#include "tools.h"
#include "views/text.h"

using namespace memobserve;
using namespace memobserve::testing;

namespace {

const std::string kFixture = std::string(FIXTURES_DIR) + "/snapshot/two_processes.json";
constexpr int kWidth = 1200;
constexpr int kHeight = 800;

std::string export_fixture(const std::string& name) {
    std::string output = artifacts_dir() + "/" + name;
    unlink(output.c_str());
    CommandResult run = run_command({MEMOBSERVE_BINARY, "report", kFixture, "--format", "html", "-o", output});
    INFO("memobserve stderr: " << run.errors);
    REQUIRE(run.exit_code == 0);
    return output;
}

// Chromium refuses to run as root inside its sandbox.
std::vector<std::string> chromium_command(const std::string& profile_dir) {
    std::vector<std::string> command = {"chromium", "--headless", "--disable-gpu",
                                        "--user-data-dir=" + profile_dir, "--no-first-run",
                                        "--window-size=" + std::to_string(kWidth) + "," +
                                            std::to_string(kHeight)};
    if (geteuid() == 0)
        command.push_back("--no-sandbox");
    return command;
}

// The DOM after the page's scripts ran.
std::string dump_dom(const std::string& html_path) {
    std::string profile_dir = artifacts_dir() + "/chromium-profile";
    std::vector<std::string> command = chromium_command(profile_dir);
    command.push_back("--dump-dom");
    command.push_back("file://" + html_path);
    CommandResult run = run_command(command);
    INFO("chromium errors:\n" << run.errors);
    REQUIRE(run.exit_code == 0);
    return run.output;
}

// A copy of the page with `script` run after the flame graph's own script,
// which is how these tests click and type without a driver.
std::string page_with_script(const std::string& html_path, const std::string& name, const std::string& script) {
    std::string html = read_file(html_path);
    std::size_t end = html.rfind("</body>");
    REQUIRE(end != std::string::npos);
    html.insert(end, "<script>" + script + "</script>\n");
    std::string path = artifacts_dir() + "/" + name;
    std::ofstream(path) << html;
    return path;
}

// The opening tag of the frame element for `name`, or empty.
std::string frame_tag(const std::string& dom, const std::string& name) {
    std::size_t at = dom.find("data-name=\"" + name + "\"");
    if (at == std::string::npos)
        return "";
    std::size_t start = dom.rfind('<', at);
    return dom.substr(start, dom.find('>', at) - start + 1);
}

std::string element_text(const std::string& dom, const std::string& id) {
    std::size_t at = dom.find("id=\"" + id + "\"");
    if (at == std::string::npos)
        return "";
    std::size_t start = dom.find('>', at) + 1;
    return dom.substr(start, dom.find('<', start) - start);
}

std::uint64_t resident_total(const Snapshot& snapshot) {
    std::uint64_t total = 0;
    for (const auto& site : snapshot.sites)
        total += site.counters.resident_bytes;
    return total;
}

}  // namespace

TEST_CASE("flame graph is built in Chromium", "[export][html]") {
    if (!require_program("chromium", "chromium", "flame graph is built in Chromium"))
        return;
    Snapshot snapshot = load_snapshot(kFixture);
    std::string html_path = export_fixture("two_processes.html");
    std::string html = read_file(html_path);
    CHECK(html.find("http://") == std::string::npos);
    CHECK(html.find("https://") == std::string::npos);

    std::string dom = dump_dom(html_path);
    std::uint64_t total = resident_total(snapshot);
    CHECK(element_text(dom, "total") ==
          "resident " + format_bytes(total) + " (" + std::to_string(total) + " bytes) in all");
    CHECK_THAT(frame_tag(dom, "all"), Catch::Contains("data-value=\"" + std::to_string(total) + "\""));

    // Every frame of a site holding at least 1% of the resident bytes is wide
    // enough to be drawn, and gets its own element.
    for (const auto& site : snapshot.sites) {
        if (site.counters.resident_bytes * 100 < total)
            continue;
        for (const auto& frame : site.frames) {
            INFO("frame " << frame.symbol);
            CHECK_THAT(frame_tag(dom, frame.symbol), Catch::Contains("class=\"frame"));
        }
    }
    CHECK_THAT(frame_tag(dom, "api (101)"), Catch::Contains("class=\"frame"));
    CHECK_THAT(frame_tag(dom, "worker (202)"), Catch::Contains("class=\"frame"));
}

TEST_CASE("flame graph shows details on hover", "[export][html]") {
    if (!require_program("chromium", "chromium", "flame graph shows details on hover"))
        return;
    std::string html_path = export_fixture("two_processes-hover.html");
    std::string hovered = page_with_script(
        html_path, "two_processes-hover-entered.html",
        "document.querySelector('.frame[data-name=\"parse_request\"]')"
        ".dispatchEvent(new MouseEvent('mouseenter'));");

    std::string dom = dump_dom(hovered);
    std::string details = element_text(dom, "details");
    CHECK_THAT(details, Catch::StartsWith("parse_request\n/srv/api  api.c:40\n"));
    CHECK_THAT(details, Catch::Contains("resident " + format_bytes(6291456)));
    CHECK_THAT(details, Catch::Contains("allocated " + format_bytes(8388608)));
}

TEST_CASE("flame graph zooms into a clicked frame", "[export][html]") {
    if (!require_program("chromium", "chromium", "flame graph zooms into a clicked frame"))
        return;
    std::string html_path = export_fixture("two_processes-zoom.html");
    std::string clicked = page_with_script(
        html_path, "two_processes-zoom-clicked.html",
        "document.querySelector('.frame[data-name=\"parse_request\"]').click();");

    std::string dom = dump_dom(clicked);
    std::string parse = frame_tag(dom, "parse_request");
    CHECK_THAT(parse, Catch::Contains("left: 0px"));
    // A sibling of the zoomed frame is gone, and its callers stay as ancestors.
    CHECK(frame_tag(dom, "cache_insert").empty());
    CHECK(frame_tag(dom, "map_buffer").empty());
    CHECK_THAT(frame_tag(dom, "main"), Catch::Contains("frame ancestor"));
}

TEST_CASE("flame graph switches layer and searches", "[export][html]") {
    if (!require_program("chromium", "chromium", "flame graph switches layer and searches"))
        return;
    Snapshot snapshot = load_snapshot(kFixture);
    std::string html_path = export_fixture("two_processes-layer.html");
    std::string changed = page_with_script(
        html_path, "two_processes-layer-changed.html",
        "var select = document.getElementById('layer');"
        "select.value = '0';"
        "select.dispatchEvent(new Event('change'));"
        "var search = document.getElementById('search');"
        "search.value = 'MALLOC';"
        "search.dispatchEvent(new Event('input'));");

    std::string dom = dump_dom(changed);
    std::uint64_t allocated = snapshot.totals.allocated_bytes;
    CHECK(element_text(dom, "total") ==
          "allocated " + format_bytes(allocated) + " (" + std::to_string(allocated) + " bytes) in all");
    std::uint64_t by_malloc = 0;
    for (const auto& site : snapshot.sites)
        if (!site.frames.empty() && site.frames[0].symbol == "malloc")
            by_malloc += site.counters.allocated_bytes;
    CHECK_THAT(element_text(dom, "matched"), Catch::StartsWith("matched " + format_bytes(by_malloc)));
    CHECK_THAT(frame_tag(dom, "malloc"), Catch::Contains("match"));
    CHECK_THAT(frame_tag(dom, "parse_request"), !Catch::Contains("match"));
}

TEST_CASE("flame graph screenshot is not blank", "[export][html]") {
    if (!require_program("chromium", "chromium", "flame graph screenshot is not blank"))
        return;
    std::string html_path = export_fixture("two_processes-screenshot.html");
    std::string png_path = artifacts_dir() + "/flamegraph.png";
    unlink(png_path.c_str());

    std::vector<std::string> command = chromium_command(artifacts_dir() + "/chromium-profile");
    command.push_back("--screenshot=" + png_path);
    command.push_back("file://" + html_path);
    CommandResult run = run_command(command);
    INFO("chromium errors:\n" << run.errors);
    REQUIRE(run.exit_code == 0);

    Image image = decode_png(read_file(png_path));
    CHECK(image.width == kWidth);
    CHECK(image.height == kHeight);
    std::set<std::tuple<int, int, int>> colours;
    std::size_t warm = 0;
    for (std::size_t i = 0; i + 2 < image.rgb.size(); i += 3) {
        int red = image.rgb[i];
        int green = image.rgb[i + 1];
        int blue = image.rgb[i + 2];
        colours.insert({red, green, blue});
        // Code frames are drawn in reds to yellows: strong red, weak blue.
        if (red >= 200 && blue <= 120 && green >= blue)
            ++warm;
    }
    INFO("screenshot kept at " << png_path);
    CHECK(colours.size() > 20);
    // The fixture's call paths fill at least three rows of 17 px across most
    // of the 1200 px wide graph.
    CHECK(warm > 3 * 17 * 900);
}
