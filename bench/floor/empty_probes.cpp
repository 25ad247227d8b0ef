// The overhead benchmark's floor at memobserve's own probe placement: run a
// command with empty BPF programs on every allocator function memobserve
// probes, at the same offsets (the first emulated instruction, see
// session/probe_placement.h), entry and return alike. What a malloc/free pair
// costs under this tool is what the uprobe traps alone cost, so memobserve's
// cost per pair over this one is the price of its own programs.
//
// Usage: empty_probes COMMAND [ARGUMENT...]
// Exits with the command's exit status.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <bpf/libbpf.h>
#include <fmt/core.h>

#include "collectors/procfs.h"
#include "empty_probes.skel.h"
#include "session/allocators.h"
#include "session/launcher.h"
#include "util/error.h"

namespace {

using namespace memobserve;

struct SkeletonDeleter {
    void operator()(empty_probes_bpf* skeleton) const { empty_probes_bpf__destroy(skeleton); }
};
struct LinkDeleter {
    void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

// Allocator files that memobserve itself maps: the launched command maps the
// same libc, and a file it does not map costs it nothing.
std::vector<AllocatorFile> allocator_files() {
    std::vector<AllocatorFile> files;
    auto maps = read_maps(static_cast<int>(getpid()));
    if (!maps)
        throw Error("cannot read /proc/self/maps");
    for (const auto& mapped : executable_files(static_cast<int>(getpid()), *maps)) {
        auto file = inspect_allocator_file(mapped.open_path);
        if (!file || file->functions.empty())
            continue;
        file->path = mapped.path;
        files.push_back(std::move(*file));
    }
    return files;
}

// Attach the empty programs as memobserve attaches its own: an entry probe on
// each function and a return probe on each but free.
std::vector<Link> attach(empty_probes_bpf* skeleton, const std::vector<AllocatorFile>& files,
                         int pid) {
    std::vector<Link> links;
    for (const auto& file : files) {
        for (const auto& function : file.functions) {
            for (bool is_return : {false, true}) {
                if (is_return && function.name == "free")
                    continue;
                LIBBPF_OPTS(bpf_uprobe_opts, options, .retprobe = is_return);
                bpf_program* program =
                    is_return ? skeleton->progs.empty_return : skeleton->progs.empty_entry;
                bpf_link* link = bpf_program__attach_uprobe_opts(
                    program, pid, file.open_path.c_str(), function.file_offset, &options);
                if (!link)
                    throw Error(fmt::format("failed to attach an empty probe to {} in {}: {}",
                                            function.name, file.path, describe_errno(errno)));
                links.emplace_back(link);
            }
        }
    }
    return links;
}

int run(const std::vector<std::string>& command) {
    LaunchedCommand child(command);
    std::unique_ptr<empty_probes_bpf, SkeletonDeleter> skeleton(empty_probes_bpf__open_and_load());
    if (!skeleton)
        throw Error(fmt::format("failed to load the empty BPF programs: {}",
                                describe_errno(errno)));
    std::vector<Link> links = attach(skeleton.get(), allocator_files(), child.pid());
    fmt::print(stderr, "empty_probes: {} probes attached\n", links.size());
    child.release();
    while (true) {
        if (auto status = child.poll_exit())
            return *status;
        usleep(10000);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: empty_probes COMMAND [ARGUMENT...]\n");
        return 2;
    }
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const memobserve::Error& error) {
        std::fprintf(stderr, "empty_probes: %s\n", error.what());
        return 1;
    }
}
