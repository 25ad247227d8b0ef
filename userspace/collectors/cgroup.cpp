#include "collectors/cgroup.h"

#include <sys/stat.h>

#include <charconv>
#include <map>
#include <filesystem>

#include <fmt/format.h>

#include "collectors/procfs.h"
#include "util/error.h"

namespace memobserve {

namespace {

namespace fs = std::filesystem;

// Location of the memory cgroup files of a process.
struct MemoryCgroupLocation {
    bool v2 = false;
    std::string path;       // path within the hierarchy
    fs::path directory;     // that path below the hierarchy's mount point
};

bool contains_word(std::string_view list, std::string_view word, char separator) {
    while (!list.empty()) {
        std::size_t end = list.find(separator);
        if (list.substr(0, end) == word)
            return true;
        if (end == std::string_view::npos)
            break;
        list.remove_prefix(end + 1);
    }
    return false;
}

std::string_view trim(std::string_view text) {
    std::size_t start = text.find_first_not_of(" \t\n");
    if (start == std::string_view::npos)
        return {};
    std::size_t end = text.find_last_not_of(" \t\n");
    return text.substr(start, end - start + 1);
}

// Mount point of the v2 hierarchy: `root` itself on a pure v2 host,
// root/unified on a hybrid one, empty when there is none.
std::optional<fs::path> find_v2_mount(const fs::path& root) {
    std::error_code error;
    if (fs::exists(root / "cgroup.controllers", error))
        return root;
    if (fs::exists(root / "unified" / "cgroup.controllers", error))
        return root / "unified";
    return std::nullopt;
}

bool v2_has_memory_controller(const fs::path& v2_mount) {
    auto controllers = read_text_file((v2_mount / "cgroup.controllers").string());
    if (!controllers)
        return false;
    std::string_view list = trim(*controllers);
    // The file separates controllers with single spaces.
    return contains_word(list, "memory", ' ');
}

// A path from /proc/PID/cgroup starts with "/.." when the cgroup lies outside
// the reader's cgroup namespace, so it cannot be reached below the mount.
bool is_reachable(const std::string& path) {
    return path.starts_with('/') && !path.starts_with("/..");
}

// `v2_path` and `memory_path` are the process's paths in each hierarchy; the
// one of the hierarchy that holds the memory controller is used.
std::optional<MemoryCgroupLocation> locate_memory_cgroup(const std::string& v2_path,
                                                         const std::string& memory_path,
                                                         const fs::path& root) {
    MemoryCgroupLocation location;
    auto v2_mount = find_v2_mount(root);
    if (v2_mount && v2_has_memory_controller(*v2_mount)) {
        location.v2 = true;
        location.path = v2_path;
        location.directory = *v2_mount / fs::path(location.path).relative_path();
    } else {
        location.path = memory_path;
        location.directory = root / "memory" / fs::path(location.path).relative_path();
    }

    std::error_code error;
    if (!is_reachable(location.path) || !fs::is_directory(location.directory, error))
        return std::nullopt;
    return location;
}

// Reads a cgroup file that contains one byte count, or "max" when `max_allowed`.
// Returns empty when the file is absent or contains "max", and throws Error for
// other text.
std::optional<std::uint64_t> read_byte_count(const fs::path& file, bool max_allowed) {
    auto text = read_text_file(file.string());
    if (!text)
        return std::nullopt;
    std::string_view value = trim(*text);
    if (max_allowed && value == "max")
        return std::nullopt;

    std::uint64_t bytes = 0;
    auto [stop, error] = std::from_chars(value.data(), value.data() + value.size(), bytes);
    if (value.empty() || error != std::errc{} || stop != value.data() + value.size())
        throw Error(fmt::format("invalid byte count in {}: \"{}\"", file.string(), value));
    return bytes;
}

// "name value" lines, as in memory.stat, memory.events and memory.oom_control.
// Lines that are not a name and a number are left out.
std::map<std::string, std::uint64_t> read_keyed_counts(const fs::path& file) {
    std::map<std::string, std::uint64_t> counts;
    auto text = read_text_file(file.string());
    if (!text)
        return counts;
    std::string_view rest = *text;
    while (!rest.empty()) {
        std::size_t end = rest.find('\n');
        std::string_view line = rest.substr(0, end);
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
        std::size_t space = line.find(' ');
        if (space == std::string_view::npos)
            continue;
        std::string_view value = trim(line.substr(space + 1));
        std::uint64_t number = 0;
        auto [stop, error] = std::from_chars(value.data(), value.data() + value.size(), number);
        if (error == std::errc{} && stop == value.data() + value.size() && !value.empty())
            counts[std::string(line.substr(0, space))] = number;
    }
    return counts;
}

std::uint64_t directory_inode(const fs::path& directory) {
    struct stat status;
    return stat(directory.c_str(), &status) == 0 ? status.st_ino : 0;
}

CgroupMemory read_v2_memory(const MemoryCgroupLocation& location, CgroupDetail detail) {
    CgroupMemory memory;
    memory.path = location.path;
    memory.hierarchy = "v2";
    memory.id = directory_inode(location.directory);
    if (detail == CgroupDetail::all) {
        memory.stat = read_keyed_counts(location.directory / "memory.stat");
        memory.events = read_keyed_counts(location.directory / "memory.events");
    }
    // The root cgroup has neither file, so both values stay empty there.
    memory.memory_current_bytes = read_byte_count(location.directory / "memory.current", false);
    memory.memory_max_bytes = read_byte_count(location.directory / "memory.max", true);
    return memory;
}

CgroupMemory read_v1_memory(const MemoryCgroupLocation& location, CgroupDetail detail) {
    CgroupMemory memory;
    memory.path = location.path;
    memory.hierarchy = "v1";
    memory.id = directory_inode(location.directory);
    if (detail == CgroupDetail::all) {
        memory.stat = read_keyed_counts(location.directory / "memory.stat");
        memory.events = read_keyed_counts(location.directory / "memory.oom_control");
        memory.events.erase("oom_kill_disable");
        if (auto failures = read_byte_count(location.directory / "memory.failcnt", false))
            memory.events["failcnt"] = *failures;
        if (auto kernel = read_byte_count(location.directory / "memory.kmem.usage_in_bytes", false))
            memory.events["kernel_bytes"] = *kernel;
    }
    memory.memory_current_bytes = read_byte_count(location.directory / "memory.usage_in_bytes", false);
    auto limit = read_byte_count(location.directory / "memory.limit_in_bytes", false);
    if (limit && !is_v1_unlimited(*limit))
        memory.memory_max_bytes = limit;
    return memory;
}

}  // namespace

CgroupMembership parse_proc_cgroup(std::string_view text) {
    CgroupMembership membership;
    while (!text.empty()) {
        std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);

        // "hierarchy-ID:controller-list:path". The path may contain ':', so
        // only the first two colons separate fields.
        std::size_t first = line.find(':');
        std::size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
        if (second == std::string_view::npos)
            continue;
        std::string_view hierarchy = line.substr(0, first);
        std::string_view controllers = line.substr(first + 1, second - first - 1);
        std::string_view path = line.substr(second + 1);

        if (hierarchy == "0" && controllers.empty())
            membership.v2_path = std::string(path);
        else if (contains_word(controllers, "memory", ','))
            membership.memory_path = std::string(path);
    }
    return membership;
}

bool is_v1_unlimited(std::uint64_t limit_bytes) {
    return limit_bytes >= kV1UnlimitedThreshold;
}

CgroupMounts find_cgroup_mounts(const std::string& root) {
    CgroupMounts mounts;
    if (auto v2 = find_v2_mount(root)) {
        mounts.v2 = v2->string();
        mounts.v2_has_memory = v2_has_memory_controller(*v2);
    }
    std::error_code error;
    if (!mounts.v2_has_memory && fs::exists(fs::path(root) / "memory" / "memory.usage_in_bytes", error))
        mounts.v1_memory = (fs::path(root) / "memory").string();
    return mounts;
}

std::optional<CgroupMemory> read_cgroup_memory(const CgroupMembership& membership,
                                               const std::string& root, CgroupDetail detail) {
    auto location = locate_memory_cgroup(membership.v2_path, membership.memory_path, root);
    if (!location)
        return std::nullopt;
    return location->v2 ? read_v2_memory(*location, detail) : read_v1_memory(*location, detail);
}

std::optional<CgroupMemory> read_cgroup_memory(int pid, const std::string& root, CgroupDetail detail) {
    auto text = read_process_file(pid, "cgroup");
    if (!text)
        return std::nullopt;
    return read_cgroup_memory(parse_proc_cgroup(*text), root, detail);
}

std::optional<CgroupMemory> read_memory_cgroup_at(const std::string& path, const std::string& root,
                                                  CgroupDetail detail) {
    return read_cgroup_memory(CgroupMembership{path, path}, root, detail);
}

}  // namespace memobserve
