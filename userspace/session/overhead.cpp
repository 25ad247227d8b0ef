#include "session/overhead.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "collectors/procfs.h"
#include "session/allocators.h"
#include "session/bpf_session.h"
#include "util/log.h"

namespace memobserve {

namespace {

constexpr int kCalibrationPairs = 4000;
constexpr int kCalibrationRuns = 3;

// CPU time of the calling thread, traps included: preemption by other work on
// the machine does not count.
std::uint64_t thread_cpu_ns() {
    timespec time;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time);
    return static_cast<std::uint64_t>(time.tv_sec) * 1000000000u + static_cast<std::uint64_t>(time.tv_nsec);
}

// The child: for each byte read, time kCalibrationPairs malloc and free
// pairs and write the nanoseconds back. Ends at end of input.
[[noreturn]] void run_calibration_child(int input, int output) {
    void* volatile block = nullptr;
    char command;
    while (read(input, &command, 1) == 1) {
        std::uint64_t start = thread_cpu_ns();
        for (int i = 0; i < kCalibrationPairs; ++i) {
            block = std::malloc(64);
            std::free(block);
        }
        std::uint64_t elapsed = thread_cpu_ns() - start;
        if (write(output, &elapsed, sizeof(elapsed)) != sizeof(elapsed))
            break;
    }
    _exit(0);
}

// The fastest of `runs` timings, in nanoseconds; 0 on failure.
std::uint64_t fastest_run(int to_child, int from_child, int runs = kCalibrationRuns) {
    std::uint64_t fastest = 0;
    for (int run = 0; run < runs; ++run) {
        std::uint64_t elapsed = 0;
        if (write(to_child, "r", 1) != 1 || read(from_child, &elapsed, sizeof(elapsed)) != sizeof(elapsed))
            return 0;
        fastest = fastest == 0 ? elapsed : std::min(fastest, elapsed);
    }
    return fastest;
}

std::optional<AllocatorFile> libc_of(int pid) {
    auto maps = read_maps(pid);
    if (!maps)
        return std::nullopt;
    for (const auto& mapped : executable_files(pid, *maps)) {
        auto file = inspect_allocator_file(mapped.open_path);
        if (!file)
            continue;
        bool has_malloc = std::any_of(file->functions.begin(), file->functions.end(),
                                      [](const auto& function) { return function.name == "malloc"; });
        if (!has_malloc)
            continue;
        file->path = mapped.path;
        file->device = mapped.device;
        file->inode = mapped.inode;
        return file;
    }
    return std::nullopt;
}

}  // namespace

double measure_probe_cost_ns(BpfSession& bpf) {
    int to_child[2];
    int from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0)
        return 0;
    if (pipe2(from_child, O_CLOEXEC) != 0) {
        close(to_child[0]);
        close(to_child[1]);
        return 0;
    }
    pid_t child = fork();
    if (child == 0) {
        close(to_child[1]);
        close(from_child[0]);
        run_calibration_child(to_child[0], from_child[1]);
    }
    close(to_child[0]);
    close(from_child[1]);
    double cost = 0;
    if (child > 0) {
        std::uint64_t bare = fastest_run(to_child[1], from_child[0]);
        auto libc = libc_of(child);
        std::string failure = libc ? bpf.attach_allocator(*libc, child) : "no libc found";
        // The child is traced like a target, so that a hit includes the BPF
        // programs' work, and what it records is deleted afterwards. One
        // untraced run comes first, because the kernel misses the return of
        // the first probed call (see attach_step_probes in tracer.cpp).
        if (failure.empty() && fastest_run(to_child[1], from_child[0], 1) != 0)
            bpf.add_target(child);
        std::uint64_t hits_before = bpf.read_stat(MO_STAT_ALLOC_PROBE_HITS);
        std::uint64_t probed = failure.empty() ? fastest_run(to_child[1], from_child[0]) : 0;
        // Hits as the guard counts them: malloc's entry and return, free's
        // entry. Every run makes as many. A cgroup target's filter does not
        // keep the child, and its programs count nothing: then three per pair.
        std::uint64_t counted = bpf.read_stat(MO_STAT_ALLOC_PROBE_HITS) - hits_before;
        double hits_per_run = counted > 0 ? static_cast<double>(counted) / kCalibrationRuns
                                          : 3.0 * kCalibrationPairs;
        bpf.detach_process(child);
        bpf.forget_target(child);
        if (bare != 0 && probed > bare && hits_per_run > 0)
            cost = static_cast<double>(probed - bare) / hits_per_run;
        else
            log::info("probe cost not measured: {}", failure.empty() ? "no difference" : failure);
    }
    close(to_child[1]);
    close(from_child[0]);
    if (child > 0)
        waitpid(child, nullptr, 0);
    return cost;
}

double process_cpu_seconds(int pid) {
    auto stat = read_text_file(fmt::format("/proc/{}/stat", pid));
    if (!stat)
        return 0;
    // utime and stime are fields 14 and 15; the command name before them is
    // in parentheses and may contain spaces, so count from the last ')'.
    std::size_t position = stat->rfind(')');
    if (position == std::string::npos)
        return 0;
    const char* cursor = stat->c_str() + position + 1;
    char* end = nullptr;
    // values[0] stands for the state (field 3), values[k] for field 3 + k.
    std::uint64_t values[13] = {};
    for (int field = 0; field < 13; ++field) {
        while (*cursor == ' ')
            ++cursor;
        if (field == 0) {
            ++cursor;  // the state, a letter
            continue;
        }
        values[field] = std::strtoull(cursor, &end, 10);
        cursor = end;
    }
    static const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
    return static_cast<double>(values[11] + values[12]) / ticks_per_second;
}

double probe_share_percent(std::uint64_t probe_hits, double probe_cost_ns, double target_cpu_seconds) {
    if (target_cpu_seconds <= 0)
        return 0;
    // The calibration runs in another process with a warm cache and can be
    // off either way, so a fully trapped target reads 100% at most.
    double percent = 100.0 * static_cast<double>(probe_hits) * probe_cost_ns * 1e-9 / target_cpu_seconds;
    return std::min(percent, 100.0);
}

}  // namespace memobserve
