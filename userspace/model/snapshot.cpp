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

json cgroup_json(const CgroupMemory& cgroup, bool details) {
    json result = {{"path", cgroup.path},
                   {"memory_current_bytes", optional_number(cgroup.memory_current_bytes)},
                   {"memory_max_bytes", optional_number(cgroup.memory_max_bytes)}};
    if (!cgroup.hierarchy.empty())
        result["hierarchy"] = cgroup.hierarchy;
    if (cgroup.id != 0)
        result["id"] = cgroup.id;
    if (details) {
        result["stat"] = cgroup.stat;
        result["events"] = cgroup.events;
    }
    return result;
}

CgroupMemory cgroup_from_json(const json& object) {
    CgroupMemory cgroup;
    cgroup.path = object.at("path").get<std::string>();
    if (!object.at("memory_current_bytes").is_null())
        cgroup.memory_current_bytes = object.at("memory_current_bytes").get<std::uint64_t>();
    if (!object.at("memory_max_bytes").is_null())
        cgroup.memory_max_bytes = object.at("memory_max_bytes").get<std::uint64_t>();
    cgroup.hierarchy = object.value("hierarchy", std::string());
    cgroup.id = object.value("id", std::uint64_t{0});
    if (object.contains("stat"))
        cgroup.stat = object.at("stat").get<std::map<std::string, std::uint64_t>>();
    if (object.contains("events"))
        cgroup.events = object.at("events").get<std::map<std::string, std::uint64_t>>();
    return cgroup;
}

json mapping_json(const MappingInfo& mapping) {
    return {{"kind", mapping.kind},
            {"start", mapping.start},
            {"end", mapping.end},
            {"permissions", mapping.permissions},
            {"path", text_or_null(mapping.path)},
            {"size_bytes", mapping.size_bytes},
            {"rss_bytes", mapping.rss_bytes},
            {"pss_bytes", mapping.pss_bytes},
            {"uss_bytes", mapping.uss_bytes},
            {"swap_bytes", mapping.swap_bytes},
            {"traced_resident_bytes", mapping.traced_resident_bytes},
            {"untraced_resident_bytes", mapping.untraced_resident_bytes}};
}

MappingInfo mapping_from_json(const json& object) {
    MappingInfo mapping;
    mapping.kind = object.at("kind").get<std::string>();
    mapping.start = object.at("start").get<std::uint64_t>();
    mapping.end = object.at("end").get<std::uint64_t>();
    mapping.permissions = object.at("permissions").get<std::string>();
    if (!object.at("path").is_null())
        mapping.path = object.at("path").get<std::string>();
    mapping.size_bytes = object.at("size_bytes").get<std::uint64_t>();
    mapping.rss_bytes = object.at("rss_bytes").get<std::uint64_t>();
    mapping.pss_bytes = object.at("pss_bytes").get<std::uint64_t>();
    mapping.uss_bytes = object.at("uss_bytes").get<std::uint64_t>();
    mapping.swap_bytes = object.at("swap_bytes").get<std::uint64_t>();
    mapping.traced_resident_bytes = object.at("traced_resident_bytes").get<std::uint64_t>();
    mapping.untraced_resident_bytes = object.at("untraced_resident_bytes").get<std::uint64_t>();
    return mapping;
}

json process_json(const ProcessInfo& process) {
    const auto& memory = process.memory;
    json result = {
        {"pid", process.pid},
        {"nspid", process.nspid != 0 ? json(process.nspid) : json(nullptr)},
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
        {"mappings", json::array()},
    };
    if (process.cgroup)
        result["cgroup"] = cgroup_json(*process.cgroup, false);
    for (const auto& allocator : process.allocators)
        result["allocators"].push_back({{"module", allocator.module},
                                        {"kind", allocator.kind},
                                        {"probed", allocator.probed},
                                        {"note", text_or_null(allocator.note)}});
    for (const auto& mapping : process.mappings)
        result["mappings"].push_back(mapping_json(mapping));
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
    if (object.contains("nspid") && !object.at("nspid").is_null())
        process.nspid = object.at("nspid").get<int>();
    const json& cgroup = object.at("cgroup");
    if (!cgroup.is_null())
        process.cgroup = cgroup_from_json(cgroup);
    for (const json& allocator : object.value("allocators", json::array())) {
        AllocatorInfo info;
        info.module = allocator.at("module").get<std::string>();
        info.kind = allocator.at("kind").get<std::string>();
        info.probed = allocator.at("probed").get<bool>();
        if (!allocator.at("note").is_null())
            info.note = allocator.at("note").get<std::string>();
        process.allocators.push_back(info);
    }
    for (const json& mapping : object.value("mappings", json::array()))
        process.mappings.push_back(mapping_from_json(mapping));
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

CgroupBreakdown cgroup_breakdown(const CgroupMemory& cgroup) {
    auto stat = [&](const char* name) {
        auto found = cgroup.stat.find(name);
        return found == cgroup.stat.end() ? std::uint64_t{0} : found->second;
    };
    auto event = [&](const char* name) {
        auto found = cgroup.events.find(name);
        return found == cgroup.events.end() ? std::uint64_t{0} : found->second;
    };
    CgroupBreakdown breakdown;
    std::uint64_t file_with_shmem = 0;
    if (cgroup.hierarchy == "v1") {
        // The hierarchical totals include the descendants, like the usage.
        breakdown.anon = stat("total_rss");
        file_with_shmem = stat("total_cache");
        breakdown.shmem = stat("total_shmem");
        breakdown.kernel = event("kernel_bytes");
        breakdown.limit_hits = event("failcnt");
    } else {
        breakdown.anon = stat("anon");
        file_with_shmem = stat("file");
        breakdown.shmem = stat("shmem");
        breakdown.kernel = stat("kernel");
        if (breakdown.kernel == 0)
            breakdown.kernel = stat("kernel_stack") + stat("pagetables") + stat("percpu") +
                               stat("sock") + stat("slab");
        breakdown.limit_hits = event("max");
    }
    breakdown.oom_kills = event("oom_kill");
    breakdown.file = file_with_shmem > breakdown.shmem ? file_with_shmem - breakdown.shmem : 0;
    std::uint64_t known = breakdown.anon + file_with_shmem + breakdown.kernel;
    std::uint64_t usage = cgroup.memory_current_bytes.value_or(0);
    breakdown.other = usage > known ? usage - known : 0;
    return breakdown;
}

json to_json(const Snapshot& snapshot) {
    json document = {
        {"schema", kSnapshotSchema},
        {"taken_at", snapshot.taken_at},
        {"duration_s", snapshot.duration_s},
        {"host", {{"kernel", snapshot.host.kernel}, {"page_size", snapshot.host.page_size}}},
        {"target",
         {{"kind", snapshot.target.kind},
          {"cgroup_id", snapshot.target.cgroup_id != 0 ? json(snapshot.target.cgroup_id) : json(nullptr)},
          {"path", text_or_null(snapshot.target.path)},
          {"hierarchy", text_or_null(snapshot.target.hierarchy)},
          {"container_id", text_or_null(snapshot.target.container_id)}}},
        {"cgroups", json::array()},
        {"alloc_probes", snapshot.alloc_probes},
        {"fault_sample_bytes", snapshot.fault_sample_bytes},
        {"overhead",
         {{"max_percent", snapshot.overhead.max_percent},
          {"probe_cost_ns", snapshot.overhead.probe_cost_ns},
          {"last_percent", snapshot.overhead.last_percent},
          {"tripped", snapshot.overhead.tripped},
          {"tripped_after_s", snapshot.overhead.tripped_after_s}}},
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
    for (const auto& cgroup : snapshot.cgroups)
        document["cgroups"].push_back(cgroup_json(cgroup, true));
    for (const auto& process : snapshot.processes)
        document["processes"].push_back(process_json(process));
    for (const auto& site : snapshot.sites) {
        json stack = counters_json(site.counters);
        stack["pid"] = site.pid;
        stack["unknown_stack"] = site.unknown_stack;
        if (site.fault_residue)
            stack["fault_residue"] = true;
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
        snapshot.fault_sample_bytes = document.value("fault_sample_bytes", std::uint64_t{0});
        if (document.contains("overhead")) {
            const json& overhead = document.at("overhead");
            snapshot.overhead.max_percent = overhead.at("max_percent").get<double>();
            snapshot.overhead.probe_cost_ns = overhead.at("probe_cost_ns").get<double>();
            snapshot.overhead.last_percent = overhead.at("last_percent").get<double>();
            snapshot.overhead.tripped = overhead.at("tripped").get<bool>();
            snapshot.overhead.tripped_after_s = overhead.at("tripped_after_s").get<double>();
        }
        snapshot.alloc_probe_hits = document.value("alloc_probe_hits", std::uint64_t{0});
        snapshot.untracked_frees = document.value("untracked_frees", std::uint64_t{0});
        if (document.contains("target")) {
            const json& target = document.at("target");
            snapshot.target.kind = target.at("kind").get<std::string>();
            if (!target.at("cgroup_id").is_null())
                snapshot.target.cgroup_id = target.at("cgroup_id").get<std::uint64_t>();
            auto text = [&](const char* name) {
                return target.contains(name) && !target.at(name).is_null()
                           ? target.at(name).get<std::string>()
                           : std::string();
            };
            snapshot.target.path = text("path");
            snapshot.target.hierarchy = text("hierarchy");
            snapshot.target.container_id = text("container_id");
        }
        for (const json& cgroup : document.value("cgroups", json::array()))
            snapshot.cgroups.push_back(cgroup_from_json(cgroup));
        for (const json& process : document.at("processes"))
            snapshot.processes.push_back(process_from_json(process));
        for (const json& stack : document.at("stacks")) {
            Site site;
            site.pid = stack.at("pid").get<int>();
            site.unknown_stack = stack.value("unknown_stack", false);
            site.fault_residue = stack.value("fault_residue", false);
            std::vector<Frame> frames;
            for (const json& frame : stack.at("frames"))
                frames.push_back(frame_from_json(frame));
            site.frames = std::move(frames);
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
