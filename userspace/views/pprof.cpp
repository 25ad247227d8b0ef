#include "views/pprof.h"

#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>

#include "profile.pb.h"
#include "util/error.h"
#include "util/gzip.h"

namespace memobserve {

namespace {

// Name of a sample type, its unit, and the counter it reads.
struct SampleType {
    const char* name;
    const char* unit;
    std::uint64_t SiteCounters::*counter;
};

constexpr SampleType kSampleTypes[] = {
    {"allocated_space", "bytes", &SiteCounters::allocated_bytes},
    {"live_space", "bytes", &SiteCounters::live_bytes},
    {"mapped_space", "bytes", &SiteCounters::mapped_bytes},
    {"faulted_space", "bytes", &SiteCounters::faulted_bytes},
    {"resident_space", "bytes", &SiteCounters::resident_bytes},
    {"allocations", "count", &SiteCounters::allocations},
    {"live_allocations", "count", &SiteCounters::live_allocations},
};
constexpr const char* kDefaultSampleType = "resident_space";
constexpr const char* kUnknownStack = "[unknown stack]";

// Builds a pprof::Profile, interning strings, mappings, functions and
// locations so that each is stored once.
class ProfileBuilder {
public:
    ProfileBuilder() { string_index(""); }

    std::int64_t string_index(const std::string& text) {
        auto [entry, inserted] = strings_.try_emplace(text, static_cast<std::int64_t>(strings_.size()));
        if (inserted)
            profile_.add_string_table(text);
        return entry->second;
    }

    std::uint64_t location_id(const Frame& frame) {
        auto key = std::make_tuple(frame.module, frame.address, frame.symbol, frame.file, frame.line);
        auto found = locations_.find(key);
        if (found != locations_.end())
            return found->second;

        std::uint64_t id = locations_.size() + 1;
        pprof::Location* location = profile_.add_location();
        location->set_id(id);
        location->set_address(frame.address);
        if (!frame.module.empty())
            location->set_mapping_id(mapping_id(frame.module));
        pprof::Line* line = location->add_line();
        line->set_function_id(function_id(frame));
        line->set_line(frame.line);
        locations_.emplace(key, id);
        return id;
    }

    std::uint64_t unknown_stack_location() {
        if (unknown_location_ != 0)
            return unknown_location_;
        Frame unknown;
        unknown.symbol = kUnknownStack;
        unknown_location_ = location_id(unknown);
        return unknown_location_;
    }

    // Viewers take the first mapping for the main program, and name it in
    // their header ("File: ..."), so its mapping is created first.
    void add_main_module(const std::string& module) { mapping_id(module); }

    pprof::Profile& profile() { return profile_; }

private:
    // Function names follow the folded export: the symbol, or "module+0xoffset"
    // for code without one.
    std::uint64_t function_id(const Frame& frame) {
        std::string name = frame.symbol;
        if (name.empty())
            name = fmt::format("{}+{:#x}", frame.module.substr(frame.module.rfind('/') + 1), frame.offset);
        auto key = std::make_pair(name, frame.file);
        auto found = functions_.find(key);
        if (found != functions_.end())
            return found->second;

        std::uint64_t id = functions_.size() + 1;
        pprof::Function* function = profile_.add_function();
        function->set_id(id);
        function->set_name(string_index(name));
        function->set_system_name(string_index(name));
        function->set_filename(string_index(frame.file));
        functions_.emplace(key, id);
        return id;
    }

    // The snapshot stores no address ranges for modules, so memory_start and
    // memory_limit stay 0. has_functions marks the locations as symbolized
    // already, so viewers do not open the module to look up names.
    std::uint64_t mapping_id(const std::string& module) {
        auto found = mappings_.find(module);
        if (found != mappings_.end())
            return found->second;

        std::uint64_t id = mappings_.size() + 1;
        pprof::Mapping* mapping = profile_.add_mapping();
        mapping->set_id(id);
        mapping->set_filename(string_index(module));
        mapping->set_has_functions(true);
        mapping->set_has_filenames(true);
        mapping->set_has_line_numbers(true);
        mappings_.emplace(module, id);
        return id;
    }

    pprof::Profile profile_;
    std::unordered_map<std::string, std::int64_t> strings_;
    std::map<std::tuple<std::string, std::uint64_t, std::string, std::string, int>, std::uint64_t> locations_;
    std::map<std::pair<std::string, std::string>, std::uint64_t> functions_;
    std::map<std::string, std::uint64_t> mappings_;
    std::uint64_t unknown_location_ = 0;
};

// pprof values are signed 64-bit, so larger counters are clamped to the maximum.
std::int64_t to_value(std::uint64_t counter) {
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    return static_cast<std::int64_t>(counter > max ? max : counter);
}

// Seconds since the epoch of an RFC 3339 UTC time ("2026-12-04T20:01:26Z"),
// or 0 when `text` has another form.
std::int64_t epoch_seconds(const std::string& text) {
    std::tm utc{};
    const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &utc);
    if (end == nullptr || *end != '\0')
        return 0;
    return static_cast<std::int64_t>(timegm(&utc));
}

void add_header(ProfileBuilder& builder, const Snapshot& snapshot) {
    pprof::Profile& profile = builder.profile();
    for (const SampleType& type : kSampleTypes) {
        pprof::ValueType* value_type = profile.add_sample_type();
        value_type->set_type(builder.string_index(type.name));
        value_type->set_unit(builder.string_index(type.unit));
    }
    profile.set_default_sample_type(builder.string_index(kDefaultSampleType));
    profile.set_time_nanos(epoch_seconds(snapshot.taken_at) * 1'000'000'000);
    profile.set_duration_nanos(static_cast<std::int64_t>(snapshot.duration_s * 1e9));
    profile.add_comment(builder.string_index(
        fmt::format("memobserve snapshot taken {}, kernel {}", snapshot.taken_at, snapshot.host.kernel)));
    if (snapshot.drops.total() > 0)
        profile.add_comment(builder.string_index(
            fmt::format("{} events were lost while tracing; see 'memobserve report'", snapshot.drops.total())));
}

// The module of the first traced process's program: the first module whose
// file name starts with the process's command name (the kernel truncates
// comm to 15 characters).
std::optional<std::string> find_main_module(const Snapshot& snapshot) {
    if (snapshot.processes.empty() || snapshot.processes[0].comm.empty())
        return std::nullopt;
    const std::string& comm = snapshot.processes[0].comm;
    for (const auto& site : snapshot.sites)
        for (const auto& frame : site.frames)
            if (frame.module.substr(frame.module.rfind('/') + 1).starts_with(comm))
                return frame.module;
    return std::nullopt;
}

}  // namespace

std::string render_pprof(const Snapshot& snapshot) {
    ProfileBuilder builder;
    add_header(builder, snapshot);

    std::map<int, std::string> process_names;
    for (const auto& process : snapshot.processes)
        process_names[process.pid] = process.comm;
    if (auto main_module = find_main_module(snapshot))
        builder.add_main_module(*main_module);

    for (const auto& site : snapshot.sites) {
        bool any_value = false;
        for (const SampleType& type : kSampleTypes)
            any_value = any_value || site.counters.*type.counter != 0;
        if (!any_value)
            continue;

        // Locations run from the leaf to the root. The unknown-stack marker is
        // the root end, as in the folded export.
        pprof::Sample* sample = builder.profile().add_sample();
        for (const Frame& frame : site.frames)
            sample->add_location_id(builder.location_id(frame));
        if (site.unknown_stack || site.frames.empty())
            sample->add_location_id(builder.unknown_stack_location());
        for (const SampleType& type : kSampleTypes)
            sample->add_value(to_value(site.counters.*type.counter));

        pprof::Label* pid = sample->add_label();
        pid->set_key(builder.string_index("pid"));
        pid->set_num(site.pid);
        auto name = process_names.find(site.pid);
        if (name != process_names.end()) {
            pprof::Label* comm = sample->add_label();
            comm->set_key(builder.string_index("comm"));
            comm->set_str(builder.string_index(name->second));
        }
    }

    std::string encoded;
    if (!builder.profile().SerializeToString(&encoded))
        throw Error("pprof export failed: the profile could not be serialized");
    return gzip_compress(encoded);
}

}  // namespace memobserve
