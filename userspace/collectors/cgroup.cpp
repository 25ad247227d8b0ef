#include "collectors/cgroup.h"

#include <charconv>
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

std::optional<MemoryCgroupLocation> locate_memory_cgroup(const CgroupMembership& membership,
                                                         const fs::path& root) {
    MemoryCgroupLocation location;
    auto v2_mount = find_v2_mount(root);
    if (v2_mount && v2_has_memory_controller(*v2_mount)) {
        location.v2 = true;
        location.path = membership.v2_path;
        location.directory = *v2_mount / fs::path(location.path).relative_path();
    } else {
        location.path = membership.memory_path;
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

CgroupMemory read_v2_memory(const MemoryCgroupLocation& location) {
    CgroupMemory memory;
    memory.path = location.path;
    // The root cgroup has neither file, so both values stay empty there.
    memory.memory_current_bytes = read_byte_count(location.directory / "memory.current", false);
    memory.memory_max_bytes = read_byte_count(location.directory / "memory.max", true);
    return memory;
}

CgroupMemory read_v1_memory(const MemoryCgroupLocation& location) {
    CgroupMemory memory;
    memory.path = location.path;
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

std::optional<CgroupMemory> read_cgroup_memory(const CgroupMembership& membership,
                                               const std::string& root) {
    auto location = locate_memory_cgroup(membership, root);
    if (!location)
        return std::nullopt;
    return location->v2 ? read_v2_memory(*location) : read_v1_memory(*location);
}

std::optional<CgroupMemory> read_cgroup_memory(int pid, const std::string& root) {
    auto text = read_process_file(pid, "cgroup");
    if (!text)
        return std::nullopt;
    return read_cgroup_memory(parse_proc_cgroup(*text), root);
}

}  // namespace memobserve
