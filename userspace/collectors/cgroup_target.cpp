#include "collectors/cgroup_target.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "collectors/cgroup.h"
#include "collectors/procfs.h"
#include "util/error.h"

namespace memobserve {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kContainerIdLength = 64;
constexpr std::size_t kShortestContainerPrefix = 12;

bool is_hex(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    });
}

bool is_digits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::uint64_t inode_of(const fs::path& path) {
    struct stat status;
    return stat(path.c_str(), &status) == 0 ? status.st_ino : 0;
}

// Every v1 hierarchy mounted below `root`: the directories that contain
// cgroup.procs but are not the v2 mount. The memory controller's comes first.
std::vector<fs::path> v1_mounts(const fs::path& root, const std::string& v2_mount) {
    std::vector<fs::path> mounts;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(root, error)) {
        if (entry.path() == fs::path(v2_mount) || !fs::exists(entry.path() / "cgroup.procs", error))
            continue;
        mounts.push_back(entry.path());
    }
    std::stable_partition(mounts.begin(), mounts.end(),
                          [](const fs::path& mount) { return mount.filename() == "memory"; });
    return mounts;
}

// The mount that contains `directory`, or an empty path.
fs::path mount_of(const fs::path& directory, const fs::path& root, const std::string& v2_mount) {
    std::string text = directory.string();
    if (!v2_mount.empty() && (text == v2_mount || text.starts_with(v2_mount + "/")))
        return v2_mount;
    for (const auto& mount : v1_mounts(root, v2_mount)) {
        if (text == mount.string() || text.starts_with(mount.string() + "/"))
            return mount;
    }
    return {};
}

CgroupTarget target_at(const fs::path& directory, const fs::path& mount, const std::string& v2_mount) {
    CgroupTarget target;
    target.hierarchy = mount == fs::path(v2_mount) ? "v2" : "v1";
    target.directory = directory.lexically_normal().string();
    fs::path relative = fs::path(target.directory).lexically_relative(mount);
    target.path = "/";
    for (const auto& part : relative) {
        if (part == ".")
            continue;
        if (target.path.size() > 1)
            target.path += "/";
        target.path += part.string();
        ++target.level;
    }
    target.id = inode_of(directory);
    return target;
}

// Call `visit` for `top` and every directory below it.
template <typename Visit>
void walk_directories(const fs::path& top, Visit visit) {
    std::error_code error;
    if (!fs::is_directory(top, error))
        return;
    visit(top);
    for (fs::recursive_directory_iterator it(top, fs::directory_options::skip_permission_denied, error),
         end;
         it != end; it.increment(error)) {
        if (error)
            break;
        if (it->is_directory(error) && !it->is_symlink(error))
            visit(it->path());
    }
}

std::string hierarchies_searched(const CgroupMounts& mounts, const std::vector<fs::path>& v1) {
    std::string text = mounts.v2;
    for (const auto& mount : v1) {
        if (!text.empty())
            text += ", ";
        text += mount.string();
    }
    return text.empty() ? "(no cgroup hierarchy mounted)" : text;
}

}  // namespace

CgroupTarget resolve_cgroup(const std::string& spec, const std::string& root) {
    CgroupMounts mounts = find_cgroup_mounts(root);
    std::vector<fs::path> v1 = v1_mounts(root, mounts.v2);
    if (spec.empty())
        throw Error("empty --cgroup value", "give a cgroup v2 id or a cgroup path");

    if (is_digits(spec)) {
        std::uint64_t id = std::strtoull(spec.c_str(), nullptr, 10);
        std::optional<fs::path> found;
        walk_directories(mounts.v2, [&](const fs::path& directory) {
            if (!found && inode_of(directory) == id)
                found = directory;
        });
        if (found)
            return target_at(*found, mounts.v2, mounts.v2);
        std::optional<fs::path> in_v1;
        for (const auto& mount : v1) {
            walk_directories(mount, [&](const fs::path& directory) {
                if (!in_v1 && inode_of(directory) == id)
                    in_v1 = directory;
            });
        }
        if (in_v1)
            throw Error(fmt::format("cgroup id {} is the v1 cgroup {}, not a cgroup v2 id", id,
                                    in_v1->string()),
                        fmt::format("name it by its path (--cgroup {}): memobserve then follows "
                                    "its processes and their children",
                                    in_v1->string()));
        throw Error(fmt::format("no cgroup v2 directory under {} has id {}",
                                mounts.v2.empty() ? root : mounts.v2, id),
                    "a cgroup v2 id is the inode number of the cgroup's directory "
                    "(stat -c %i DIR); or name the cgroup by its path");
    }

    std::error_code error;
    fs::path given(spec);
    if (given.is_absolute() && spec.starts_with(root + "/")) {
        fs::path mount = mount_of(given.lexically_normal(), root, mounts.v2);
        if (!fs::is_directory(given, error) || mount.empty())
            throw Error(fmt::format("cgroup directory {} not found", spec),
                        "check the path with 'cat /proc/PID/cgroup' for a process in it");
        return target_at(given, mount, mounts.v2);
    }

    // A path as /proc/PID/cgroup shows it, below a mount point.
    fs::path relative = given.relative_path();
    std::vector<fs::path> candidates;
    if (!mounts.v2.empty())
        candidates.push_back(mounts.v2);
    candidates.insert(candidates.end(), v1.begin(), v1.end());
    for (const auto& mount : candidates) {
        fs::path directory = mount / relative;
        if (relative.empty() || fs::is_directory(directory, error))
            return target_at(relative.empty() ? mount : directory, mount, mounts.v2);
    }
    throw Error(fmt::format("cgroup path {} not found under {}", spec, hierarchies_searched(mounts, v1)),
                "give the path as 'cat /proc/PID/cgroup' shows it, or the directory under " + root);
}

std::string container_id_of(const std::string& name, const std::string& parent_name) {
    std::string_view text = name;
    if (text.ends_with(".scope"))
        text.remove_suffix(6);
    for (std::string_view prefix : {"docker-", "cri-containerd-", "crio-", "libpod-"}) {
        if (text.starts_with(prefix)) {
            text.remove_prefix(prefix.size());
            return text.size() == kContainerIdLength && is_hex(text) ? std::string(text) : "";
        }
    }
    // cgroupfs drivers: /docker/ID, /libpod_parent/ID, /kubepods/.../ID.
    if (text.size() == kContainerIdLength && is_hex(text) && name == text && !parent_name.empty())
        return std::string(text);
    return "";
}

CgroupTarget resolve_container(const std::string& id, const std::string& root) {
    std::string requested = id;
    std::transform(requested.begin(), requested.end(), requested.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!is_hex(requested) || requested.size() < kShortestContainerPrefix || requested.size() > kContainerIdLength)
        throw Error(fmt::format("invalid container id '{}'", id),
                    "give the container id or a prefix of at least 12 hex digits, "
                    "as 'docker ps' or 'crictl ps' shows it");

    CgroupMounts mounts = find_cgroup_mounts(root);
    std::vector<fs::path> v1 = v1_mounts(root, mounts.v2);
    // Container id -> its directory, v2 preferred, and the mount it is in.
    std::map<std::string, std::pair<fs::path, fs::path>> containers;
    std::vector<fs::path> searched;
    if (!mounts.v2.empty())
        searched.push_back(mounts.v2);
    if (!v1.empty())
        searched.push_back(v1.front());
    for (const auto& mount : searched) {
        walk_directories(mount, [&](const fs::path& directory) {
            std::string found = container_id_of(directory.filename().string(),
                                                directory.parent_path().filename().string());
            if (!found.empty() && !containers.count(found))
                containers[found] = {directory, mount};
        });
    }

    std::vector<std::string> matches;
    for (const auto& [container, location] : containers) {
        if (container.starts_with(requested))
            matches.push_back(container);
    }
    if (matches.size() == 1) {
        const auto& [directory, mount] = containers[matches.front()];
        CgroupTarget target = target_at(directory, mount, mounts.v2);
        target.container_id = matches.front();
        return target;
    }

    auto list = [](const std::vector<std::string>& ids) {
        std::string text;
        for (std::size_t i = 0; i < ids.size() && i < 5; ++i)
            text += (text.empty() ? "" : ", ") + ids[i].substr(0, 12);
        if (ids.size() > 5)
            text += fmt::format(" and {} more", ids.size() - 5);
        return text;
    };
    if (matches.size() > 1)
        throw Error(fmt::format("container id '{}' matches {} containers: {}", id, matches.size(),
                                list(matches)),
                    "give more digits of the id");
    if (containers.empty())
        throw Error(fmt::format("container '{}' not found: no container cgroups under {}", id,
                                hierarchies_searched(mounts, v1)),
                    "check that the container runs ('docker ps'), or name its cgroup with --cgroup");

    // Close matches: the ids that share the longest prefix with the one given.
    std::size_t best = 0;
    std::map<std::size_t, std::vector<std::string>> by_shared;
    for (const auto& [container, location] : containers) {
        auto [stop, unused] = std::mismatch(requested.begin(), requested.end(), container.begin());
        std::size_t shared = static_cast<std::size_t>(stop - requested.begin());
        by_shared[shared].push_back(container);
        best = std::max(best, shared);
    }
    throw Error(fmt::format("container '{}' not found; closest of the {} running: {}", id,
                            containers.size(), list(by_shared[best])),
                "check the id with 'docker ps --no-trunc' or 'crictl ps'");
}

std::vector<int> cgroup_processes(const CgroupTarget& target) {
    std::vector<int> pids;
    walk_directories(target.directory, [&](const fs::path& directory) {
        auto text = read_text_file((directory / "cgroup.procs").string());
        if (!text)
            return;
        std::size_t start = 0;
        while (start < text->size()) {
            std::size_t end = text->find('\n', start);
            if (end == std::string::npos)
                end = text->size();
            int pid = std::atoi(text->c_str() + start);
            if (pid > 0)
                pids.push_back(pid);
            start = end + 1;
        }
    });
    std::sort(pids.begin(), pids.end());
    pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
    return pids;
}

}  // namespace memobserve
