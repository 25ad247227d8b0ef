#include "views/folded.h"

#include <map>

#include <fmt/format.h>

namespace memobserve {

namespace {

// Semicolons separate frames and newlines separate stacks in the folded format.
std::string clean_frame_name(std::string name) {
    for (char& character : name)
        if (character == ';' || character == '\n')
            character = ',';
    return name;
}

std::string frame_name(const Frame& frame) {
    if (!frame.symbol.empty())
        return clean_frame_name(frame.symbol);
    std::string module = frame.module.substr(frame.module.rfind('/') + 1);
    return clean_frame_name(fmt::format("{}+{:#x}", module, frame.offset));
}

}  // namespace

std::string render_folded(const Snapshot& snapshot, SortKey value) {
    std::map<int, std::string> process_names;
    for (const auto& process : snapshot.processes)
        process_names[process.pid] = clean_frame_name(fmt::format("{} ({})", process.comm, process.pid));

    std::map<std::string, std::uint64_t> lines;
    for (const auto& site : snapshot.sites) {
        std::uint64_t amount = site_value(site.counters, value);
        if (amount == 0)
            continue;
        auto name = process_names.find(site.pid);
        std::string stack = name != process_names.end() ? name->second : fmt::format("pid {}", site.pid);
        if (site.unknown_stack)
            stack += ";[unknown stack]";
        for (auto frame = site.frames.rbegin(); frame != site.frames.rend(); ++frame)
            stack += ";" + frame_name(*frame);
        lines[stack] += amount;
    }

    std::string text;
    for (const auto& [stack, amount] : lines)
        text += fmt::format("{} {}\n", stack, amount);
    return text;
}

}  // namespace memobserve
