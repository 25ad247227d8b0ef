// A command that memobserve starts and traces from its first instruction: the
// child is forked, waits until the probes are attached, then runs exec.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace memobserve {

class LaunchedCommand {
public:
    // Fork a child that waits for release(). Throws Error when the program
    // cannot be found or is not executable.
    explicit LaunchedCommand(const std::vector<std::string>& argv);
    // Terminates and reaps the child if it is still running.
    ~LaunchedCommand();
    LaunchedCommand(const LaunchedCommand&) = delete;
    LaunchedCommand& operator=(const LaunchedCommand&) = delete;

    int pid() const { return pid_; }
    const std::string& program() const { return program_; }

    // Let the child exec the command. Throws Error when exec fails.
    void release();

    // Reap the child if it has ended; returns its exit status (128 + signal
    // number for a signal), or empty while it runs.
    std::optional<int> poll_exit();
    bool running() { return !poll_exit().has_value(); }

private:
    int pid_ = -1;
    int release_fd_ = -1;  // parent's end: closing it lets the child go on
    int error_fd_ = -1;    // parent's end: the child writes errno if exec fails
    std::optional<int> exit_status_;
    std::string program_;
};

// Full path of `name` as execvp would find it, or empty.
std::string find_program(const std::string& name);

}  // namespace memobserve
