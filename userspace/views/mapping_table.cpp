#include "views/mapping_table.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "views/text.h"

namespace memobserve {

std::optional<std::map<std::string, std::uint64_t>> untraced_by_kind(const Snapshot& snapshot) {
    std::optional<std::map<std::string, std::uint64_t>> kinds;
    for (const auto& process : snapshot.processes) {
        if (process.mappings.empty())
            continue;
        if (!kinds)
            kinds.emplace();
        for (const auto& mapping : process.mappings)
            (*kinds)[mapping.kind] += mapping.untraced_resident_bytes;
    }
    return kinds;
}

std::string render_untraced_summary(const Snapshot& snapshot) {
    auto kinds = untraced_by_kind(snapshot);
    if (!kinds)
        return "  untraced  not recorded: the snapshot has no mappings\n";

    std::uint64_t untraced = 0;
    std::vector<std::pair<std::string, std::uint64_t>> sorted;
    for (const auto& [kind, bytes] : *kinds) {
        untraced += bytes;
        if (bytes > 0)
            sorted.emplace_back(kind, bytes);
    }
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& left, const auto& right) { return left.second > right.second; });
    std::uint64_t rss = 0;
    for (const auto& process : snapshot.processes) {
        if (!process.mappings.empty())
            rss += process.memory.rss_bytes;
    }

    std::string text = fmt::format("  untraced  {:>11}  resident outside the blocks and mappings seen while "
                                   "tracing (of RSS {})\n",
                                   format_bytes(untraced), format_bytes(rss));
    if (sorted.empty())
        return text;
    text += "             ";
    for (std::size_t i = 0; i < sorted.size() && i < 4; ++i)
        text += fmt::format("{} {} {}", i == 0 ? "" : ",", sorted[i].first, format_bytes(sorted[i].second));
    text += "\n";
    // What the heap and anonymous part is: the tool cannot tell the two apart.
    if (kinds->count("heap") || kinds->count("anonymous"))
        text += "              (in heap and anonymous mappings: blocks freed but kept by the allocator, "
                "or memory allocated before tracing)\n";
    return text;
}

namespace {

std::string mapping_name(const MappingInfo& mapping) {
    if (!mapping.path.empty())
        return mapping.path;
    return fmt::format("{:#x}-{:#x}", mapping.start, mapping.end);
}

std::string render_process_mappings(const ProcessInfo& process, std::size_t rows) {
    std::uint64_t untraced = 0;
    for (const auto& mapping : process.mappings)
        untraced += mapping.untraced_resident_bytes;
    std::string text = fmt::format("pid {} {}: {} mappings, RSS {}, untraced {}\n", process.pid, process.comm,
                                   process.mappings.size(), format_bytes(process.memory.rss_bytes),
                                   format_bytes(untraced));

    std::vector<const MappingInfo*> mappings;
    for (const auto& mapping : process.mappings)
        mappings.push_back(&mapping);
    std::stable_sort(mappings.begin(), mappings.end(), [](const MappingInfo* left, const MappingInfo* right) {
        return left->rss_bytes > right->rss_bytes;
    });
    text += fmt::format("{:>11} {:>11} {:>11}  {:<9}  {}\n", "RSS", "UNTRACED", "SIZE", "KIND", "PATH OR ADDRESS");
    for (std::size_t i = 0; i < mappings.size() && i < rows; ++i) {
        const MappingInfo& mapping = *mappings[i];
        text += fmt::format("{:>11} {:>11} {:>11}  {:<9}  {}\n", format_bytes(mapping.rss_bytes),
                            format_bytes(mapping.untraced_resident_bytes), format_bytes(mapping.size_bytes),
                            mapping.kind, mapping_name(mapping));
    }
    return text;
}

}  // namespace

std::string render_mappings(const Snapshot& snapshot, std::size_t max_processes, std::size_t rows) {
    std::vector<const ProcessInfo*> processes;
    for (const auto& process : snapshot.processes) {
        if (!process.mappings.empty())
            processes.push_back(&process);
    }
    if (processes.empty())
        return "no mappings recorded (process exited before the snapshot, or a snapshot of the live view)\n";
    std::stable_sort(processes.begin(), processes.end(), [](const ProcessInfo* left, const ProcessInfo* right) {
        return left->memory.rss_bytes > right->memory.rss_bytes;
    });

    std::string text;
    for (std::size_t i = 0; i < processes.size() && i < max_processes; ++i)
        text += render_process_mappings(*processes[i], rows);
    if (processes.size() > max_processes)
        text += fmt::format("({} more processes with mappings)\n", processes.size() - max_processes);
    return text;
}

}  // namespace memobserve
