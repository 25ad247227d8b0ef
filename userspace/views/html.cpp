#include "views/html.h"

#include <array>
#include <map>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "views/text.h"

namespace memobserve {

extern const char* const kFlamegraphPage;
extern const char* const kFlamegraphStyle;
extern const char* const kFlamegraphScript;

namespace {

using nlohmann::json;

constexpr std::array<SortKey, 5> kLayers = {SortKey::allocated, SortKey::live, SortKey::mapped,
                                            SortKey::faulted, SortKey::resident};

struct FlameNode {
    std::string name;
    std::string module;
    std::string file;
    int line = 0;  // 0 when unknown or when merged frames had different lines
    bool has_location = false;
    std::array<std::uint64_t, kLayers.size()> values{};
    // Keyed by name and module, so that one function called from several
    // lines of its caller stays one frame.
    std::map<std::pair<std::string, std::string>, std::unique_ptr<FlameNode>> children;

    FlameNode& child(const std::string& child_name, const std::string& child_module) {
        auto& slot = children[{child_name, child_module}];
        if (!slot) {
            slot = std::make_unique<FlameNode>();
            slot->name = child_name;
            slot->module = child_module;
        }
        return *slot;
    }

    void add(const SiteCounters& counters) {
        for (std::size_t layer = 0; layer < kLayers.size(); ++layer)
            values[layer] += site_value(counters, kLayers[layer]);
    }
};

std::string frame_name(const Frame& frame) {
    if (!frame.symbol.empty())
        return frame.symbol;
    return fmt::format("{}+{:#x}", frame.module.substr(frame.module.rfind('/') + 1), frame.offset);
}

FlameNode build_tree(const Snapshot& snapshot) {
    std::map<int, std::string> process_names;
    for (const auto& process : snapshot.processes)
        process_names[process.pid] = fmt::format("{} ({})", process.comm, process.pid);

    FlameNode root;
    root.name = "all";
    for (const auto& site : snapshot.sites) {
        auto process_name = process_names.find(site.pid);
        FlameNode* node = &root.child(
            process_name != process_names.end() ? process_name->second : fmt::format("pid {}", site.pid), "");
        root.add(site.counters);
        node->add(site.counters);
        if (site.unknown_stack) {
            node = &node->child("[unknown stack]", "");
            node->add(site.counters);
        }
        for (auto frame = site.frames.rbegin(); frame != site.frames.rend(); ++frame) {
            FlameNode& child = node->child(frame_name(*frame), frame->module);
            if (!child.has_location) {
                child.file = frame->file;
                child.line = frame->line;
                child.has_location = true;
            } else if (child.line != frame->line || child.file != frame->file) {
                child.line = 0;
            }
            child.add(site.counters);
            node = &child;
        }
    }
    return root;
}

class StringTable {
public:
    int index(const std::string& text) {
        auto [entry, inserted] = indexes_.try_emplace(text, static_cast<int>(strings_.size()));
        if (inserted)
            strings_.push_back(text);
        return entry->second;
    }
    const json& strings() const { return strings_; }

private:
    std::unordered_map<std::string, int> indexes_;
    json strings_ = json::array();
};

std::string describe_location(const FlameNode& node) {
    std::string detail = node.module;
    if (!node.file.empty()) {
        if (!detail.empty())
            detail += "  ";
        detail += node.line > 0 ? fmt::format("{}:{}", node.file, node.line) : node.file;
    }
    return detail;
}

// [name index, detail index, [values], [children]], as flamegraph.js reads it.
json encode_node(const FlameNode& node, StringTable& strings) {
    json children = json::array();
    for (const auto& [key, child] : node.children)
        children.push_back(encode_node(*child, strings));
    return json::array({strings.index(node.name), strings.index(describe_location(node)),
                        node.values, std::move(children)});
}

json page_data(const Snapshot& snapshot) {
    StringTable strings;
    strings.index("");
    json layers = json::array();
    for (SortKey layer : kLayers)
        layers.push_back(sort_key_name(layer));

    std::string title = "memobserve flame graph";
    if (snapshot.processes.size() == 1)
        title += fmt::format(": {} ({})", snapshot.processes[0].comm, snapshot.processes[0].pid);
    else
        title += fmt::format(": {} processes", snapshot.processes.size());
    std::string info = fmt::format("snapshot taken {} after {:.1f} s of tracing, kernel {}",
                                   snapshot.taken_at, snapshot.duration_s, snapshot.host.kernel);
    if (snapshot.drops.total() > 0)
        info += fmt::format("; {} events were lost while tracing (see 'memobserve report')",
                            snapshot.drops.total());

    json root = encode_node(build_tree(snapshot), strings);
    return {{"title", title},
            {"info", info},
            {"layers", layers},
            {"default_layer", sort_key_name(SortKey::resident)},
            {"strings", strings.strings()},
            {"root", std::move(root)}};
}

// JSON inside <script> ends at the first "</script", so every '<' is written
// as \u003c and a name such as "operator<" cannot close it early. '<' only
// occurs inside JSON strings, where the escape means the same character.
std::string escape_for_script(const std::string& text) {
    std::string escaped;
    escaped.reserve(text.size());
    for (char character : text) {
        if (character == '<')
            escaped += "\\u003c";
        else
            escaped += character;
    }
    return escaped;
}

}  // namespace

std::string render_html(const Snapshot& snapshot) {
    const std::string data = escape_for_script(page_data(snapshot).dump());
    const std::pair<const char*, const std::string> parts[] = {
        {"@STYLE@", kFlamegraphStyle}, {"@DATA@", data}, {"@SCRIPT@", kFlamegraphScript}};

    // Replace each marker once, in page order, so that text inserted for one
    // marker is never searched for the next.
    std::string page = kFlamegraphPage;
    std::string html;
    std::size_t from = 0;
    for (const auto& [marker, text] : parts) {
        std::size_t at = page.find(marker, from);
        if (at == std::string::npos)
            throw Error(fmt::format("HTML export failed: the page template lacks {}", marker));
        html.append(page, from, at - from);
        html += text;
        from = at + std::string_view(marker).size();
    }
    html.append(page, from, std::string::npos);
    return html;
}

}  // namespace memobserve
