#include "model/snapshot.h"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace memobserve {

using nlohmann::json;

SiteCounters& SiteCounters::operator+=(const SiteCounters& other) {
    allocated_bytes += other.allocated_bytes;
    allocations += other.allocations;
    freed_bytes += other.freed_bytes;
    frees += other.frees;
    failed_allocations += other.failed_allocations;
    live_bytes += other.live_bytes;
    live_allocations += other.live_allocations;
    mapped_bytes += other.mapped_bytes;
    mapped_file_bytes += other.mapped_file_bytes;
    faulted_bytes += other.faulted_bytes;
    resident_bytes += other.resident_bytes;
    return *this;
}

std::uint64_t Drops::total() const {
    return live_map_full + site_map_full + stack_map_full + stack_collisions + stack_errors +
           allocator_calls_map_full + event_ring_full + allocator_returns_lost;
}

std::string rfc3339_now() {
    std::time_t now = std::time(nullptr);
    std::tm utc;
    gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

namespace {

json optional_number(const std::optional<std::uint64_t>& value) {
    return value ? json(*value) : json(nullptr);
}

json text_or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

json counters_json(const SiteCounters& counters) {
    return {
        {"allocated_bytes", counters.allocated_bytes},
        {"allocations", counters.allocations},
        {"freed_bytes", counters.freed_bytes},
        {"frees", counters.frees},
        {"failed_allocations", counters.failed_allocations},
        {"live_bytes", counters.live_bytes},
        {"live_allocations", counters.live_allocations},
        {"mapped_bytes", counters.mapped_bytes},
        {"mapped_file_bytes", counters.mapped_file_bytes},
        {"faulted_bytes", counters.faulted_bytes},
        {"resident_bytes", counters.resident_bytes},
    };
}

SiteCounters counters_from_json(const json& object) {
    SiteCounters counters;
    counters.allocated_bytes = object.at("allocated_bytes").get<std::uint64_t>();
    counters.allocations = object.at("allocations").get<std::uint64_t>();
    counters.freed_bytes = object.at("freed_bytes").get<std::uint64_t>();
    counters.frees = object.at("frees").get<std::uint64_t>();
    counters.failed_allocations = object.at("failed_allocations").get<std::uint64_t>();
    counters.live_bytes = object.at("live_bytes").get<std::uint64_t>();
    counters.live_allocations = object.at("live_allocations").get<std::uint64_t>();
    counters.mapped_bytes = object.at("mapped_bytes").get<std::uint64_t>();
    counters.mapped_file_bytes = object.value("mapped_file_bytes", std::uint64_t{0});
    counters.faulted_bytes = object.at("faulted_bytes").get<std::uint64_t>();
    counters.resident_bytes = object.at("resident_bytes").get<std::uint64_t>();
    return counters;
}

json process_json(const ProcessInfo& process) {
    const auto& memory = process.memory;
    json result = {
        {"pid", process.pid},
        {"comm", process.comm},
        {"cmdline", process.cmdline},
        {"exited", process.exited},
        {"memory",
         {{"vss_bytes", memory.vss_bytes},
          {"rss_bytes", memory.rss_bytes},
          {"rss_anon_bytes", memory.rss_anon_bytes},
          {"rss_file_bytes", memory.rss_file_bytes},
          {"rss_shmem_bytes", memory.rss_shmem_bytes},
          {"pss_bytes", memory.pss_bytes},
          {"uss_bytes", memory.uss_bytes},
          {"swap_bytes", memory.swap_bytes}}},
        {"cgroup", nullptr},
        {"allocators", json::array()},
    };
    if (process.cgroup)
        result["cgroup"] = {{"path", process.cgroup->path},
                            {"memory_current_bytes", optional_number(process.cgroup->memory_current_bytes)},
                            {"memory_max_bytes", optional_number(process.cgroup->memory_max_bytes)}};
    for (const auto& allocator : process.allocators)
        result["allocators"].push_back({{"module", allocator.module},
                                        {"kind", allocator.kind},
                                        {"probed", allocator.probed},
                                        {"note", text_or_null(allocator.note)}});
    return result;
}

ProcessInfo process_from_json(const json& object) {
    ProcessInfo process;
    process.pid = object.at("pid").get<int>();
    process.comm = object.at("comm").get<std::string>();
    process.cmdline = object.at("cmdline").get<std::string>();
    process.exited = object.at("exited").get<bool>();
    const json& memory = object.at("memory");
    process.memory.vss_bytes = memory.at("vss_bytes").get<std::uint64_t>();
    process.memory.rss_bytes = memory.at("rss_bytes").get<std::uint64_t>();
    process.memory.rss_anon_bytes = memory.at("rss_anon_bytes").get<std::uint64_t>();
    process.memory.rss_file_bytes = memory.at("rss_file_bytes").get<std::uint64_t>();
    process.memory.rss_shmem_bytes = memory.at("rss_shmem_bytes").get<std::uint64_t>();
    process.memory.pss_bytes = memory.at("pss_bytes").get<std::uint64_t>();
    process.memory.uss_bytes = memory.at("uss_bytes").get<std::uint64_t>();
    process.memory.swap_bytes = memory.at("swap_bytes").get<std::uint64_t>();
    const json& cgroup = object.at("cgroup");
    if (!cgroup.is_null()) {
        CgroupMemory memory_cgroup;
        memory_cgroup.path = cgroup.at("path").get<std::string>();
        if (!cgroup.at("memory_current_bytes").is_null())
            memory_cgroup.memory_current_bytes = cgroup.at("memory_current_bytes").get<std::uint64_t>();
        if (!cgroup.at("memory_max_bytes").is_null())
            memory_cgroup.memory_max_bytes = cgroup.at("memory_max_bytes").get<std::uint64_t>();
        process.cgroup = memory_cgroup;
    }
    for (const json& allocator : object.value("allocators", json::array())) {
        AllocatorInfo info;
        info.module = allocator.at("module").get<std::string>();
        info.kind = allocator.at("kind").get<std::string>();
        info.probed = allocator.at("probed").get<bool>();
        if (!allocator.at("note").is_null())
            info.note = allocator.at("note").get<std::string>();
        process.allocators.push_back(info);
    }
    return process;
}

json frame_json(const Frame& frame) {
    return {{"address", frame.address},
            {"symbol", text_or_null(frame.symbol)},
            {"module", frame.module},
            {"offset", frame.offset},
            {"file", text_or_null(frame.file)},
            {"line", frame.line > 0 ? json(frame.line) : json(nullptr)}};
}

Frame frame_from_json(const json& object) {
    Frame frame;
    frame.address = object.value("address", std::uint64_t{0});
    if (!object.at("symbol").is_null())
        frame.symbol = object.at("symbol").get<std::string>();
    frame.module = object.at("module").get<std::string>();
    frame.offset = object.at("offset").get<std::uint64_t>();
    if (!object.at("file").is_null())
        frame.file = object.at("file").get<std::string>();
    if (!object.at("line").is_null())
        frame.line = object.at("line").get<int>();
    return frame;
}

}  // namespace

json to_json(const Snapshot& snapshot) {
    json document = {
        {"schema", kSnapshotSchema},
        {"taken_at", snapshot.taken_at},
        {"duration_s", snapshot.duration_s},
        {"host", {{"kernel", snapshot.host.kernel}, {"page_size", snapshot.host.page_size}}},
        {"alloc_probes", snapshot.alloc_probes},
        {"alloc_probe_hits", snapshot.alloc_probe_hits},
        {"untracked_frees", snapshot.untracked_frees},
        {"processes", json::array()},
        {"stacks", json::array()},
        {"totals", counters_json(snapshot.totals)},
        {"drops",
         {{"live_map_full", snapshot.drops.live_map_full},
          {"site_map_full", snapshot.drops.site_map_full},
          {"stack_map_full", snapshot.drops.stack_map_full},
          {"stack_collisions", snapshot.drops.stack_collisions},
          {"stack_errors", snapshot.drops.stack_errors},
          {"allocator_calls_map_full", snapshot.drops.allocator_calls_map_full},
          {"event_ring_full", snapshot.drops.event_ring_full},
          {"allocator_returns_lost", snapshot.drops.allocator_returns_lost}}},
    };
    for (const auto& process : snapshot.processes)
        document["processes"].push_back(process_json(process));
    for (const auto& site : snapshot.sites) {
        json stack = counters_json(site.counters);
        stack["pid"] = site.pid;
        stack["unknown_stack"] = site.unknown_stack;
        stack["frames"] = json::array();
        for (const auto& frame : site.frames)
            stack["frames"].push_back(frame_json(frame));
        document["stacks"].push_back(std::move(stack));
    }
    return document;
}

Snapshot snapshot_from_json(const json& document) {
    if (!document.is_object() || !document.contains("schema"))
        throw Error("not a memobserve snapshot: no \"schema\" field");
    std::string schema = document.at("schema").get<std::string>();
    if (schema != kSnapshotSchema)
        throw Error(fmt::format("unsupported snapshot schema \"{}\" (this memobserve reads \"{}\")",
                                schema, kSnapshotSchema));

    Snapshot snapshot;
    try {
        snapshot.taken_at = document.at("taken_at").get<std::string>();
        snapshot.duration_s = document.at("duration_s").get<double>();
        snapshot.host.kernel = document.at("host").at("kernel").get<std::string>();
        snapshot.host.page_size = document.at("host").at("page_size").get<std::uint64_t>();
        snapshot.alloc_probes = document.value("alloc_probes", true);
        snapshot.alloc_probe_hits = document.value("alloc_probe_hits", std::uint64_t{0});
        snapshot.untracked_frees = document.value("untracked_frees", std::uint64_t{0});
        for (const json& process : document.at("processes"))
            snapshot.processes.push_back(process_from_json(process));
        for (const json& stack : document.at("stacks")) {
            Site site;
            site.pid = stack.at("pid").get<int>();
            site.unknown_stack = stack.value("unknown_stack", false);
            for (const json& frame : stack.at("frames"))
                site.frames.push_back(frame_from_json(frame));
            site.counters = counters_from_json(stack);
            snapshot.sites.push_back(std::move(site));
        }
        snapshot.totals = counters_from_json(document.at("totals"));
        const json& drops = document.at("drops");
        snapshot.drops.live_map_full = drops.at("live_map_full").get<std::uint64_t>();
        snapshot.drops.site_map_full = drops.at("site_map_full").get<std::uint64_t>();
        snapshot.drops.stack_map_full = drops.at("stack_map_full").get<std::uint64_t>();
        snapshot.drops.stack_collisions = drops.at("stack_collisions").get<std::uint64_t>();
        snapshot.drops.stack_errors = drops.at("stack_errors").get<std::uint64_t>();
        snapshot.drops.allocator_calls_map_full = drops.at("allocator_calls_map_full").get<std::uint64_t>();
        snapshot.drops.event_ring_full = drops.at("event_ring_full").get<std::uint64_t>();
        snapshot.drops.allocator_returns_lost = drops.value("allocator_returns_lost", std::uint64_t{0});
    } catch (const json::exception& error) {
        throw Error(fmt::format("invalid snapshot: {}", error.what()));
    }
    return snapshot;
}

}  // namespace memobserve
