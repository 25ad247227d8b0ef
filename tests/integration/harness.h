// Helpers for the integration tests: start workloads and memobserve as child
// processes, drive the workload protocol (ready, go, done), and read the
// snapshot memobserve wrote.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace memobserve::testing {

constexpr std::uint64_t kMiB = 1024 * 1024;

// True when the test runs as root; otherwise prints why the test is skipped.
bool have_root(const char* test_name);

// A child process with pipes to its stdin and stdout (stderr to a file).
class Child {
public:
    Child(const std::vector<std::string>& argv, const std::vector<std::string>& environment = {});
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    int pid() const { return pid_; }
    void write_line(const std::string& line);
    void close_stdin();
    // Read stdout until a line equal to `line`; false on end of output or timeout.
    bool wait_for_line(const std::string& line, int timeout_s = 120);
    // Wait until the stderr file contains `text`.
    bool wait_for_stderr(const std::string& text, int timeout_s = 60);
    void signal(int signal_number);
    // Exit status (128 + signal for a signal).
    int wait(int timeout_s = 600);
    std::string stdout_text() const { return stdout_text_; }
    std::string stderr_text() const;

private:
    int pid_ = -1;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    std::string stderr_path_;
    std::string stdout_text_;
    std::string pending_;
    bool reaped_ = false;
    int status_ = 0;
};

std::string workload(const std::string& name);
std::string memobserve_binary();
std::string temporary_path(const std::string& name);

// Run workload `argv` under `memobserve snapshot -p PID`: memobserve attaches,
// the workload runs its case, memobserve gets SIGINT and writes the snapshot
// while the workload still lives. Returns the parsed snapshot.
nlohmann::json snapshot_of_workload(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& memobserve_options = {},
                                    const std::vector<std::string>& environment = {});

// Name of the first frame of a stack that is not in the allocator (libc,
// libstdc++, ld.so, jemalloc): the function that asked for memory.
std::string calling_function(const nlohmann::json& stack);

// Sum of `field` over the stacks whose calling function is `function`.
std::uint64_t sum_at(const nlohmann::json& snapshot, const std::string& function,
                     const std::string& field);
std::uint64_t sum_where(const nlohmann::json& snapshot,
                        const std::function<bool(const nlohmann::json&)>& predicate,
                        const std::string& field);

bool file_exists(const std::string& path);
// Standard output of a shell command.
std::string command_output(const std::string& command);

// Number of loaded BPF programs with memobserve's program names (the kernel
// keeps 15 characters). Debian's bpftool does not show owning processes, so
// the tests compare this count before, during and after a run. Another
// memobserve running at the same time would change the count.
std::size_t memobserve_programs();
// Number of BPF links attached to the page_fault_user tracepoint.
std::size_t page_fault_links();

// Number of BPF links (uprobes among them) of the programs named `name`.
std::size_t links_of_program(const std::string& name);
// Wait until the count is back to `expected`: the kernel frees detached
// tracing programs after an RCU grace period, which takes seconds on a busy
// machine.
bool programs_return_to(std::size_t expected);

struct Run {
    int status;
    std::string stdout_text;
    std::string stderr_text;
    int pid;
};
// Run memobserve with `arguments` and stdin closed, to its end.
Run run_memobserve(const std::vector<std::string>& arguments);

}  // namespace memobserve::testing
