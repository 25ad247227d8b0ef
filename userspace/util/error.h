// Error type of memobserve: what failed, on which value, and what to do next.
#pragma once

#include <stdexcept>
#include <string>

namespace memobserve {

// A failure that ends the command. main() prints it and turns it into the exit
// code. Destructors release everything owned by the stack (probes, maps,
// children) on the way out.
class Error : public std::runtime_error {
public:
    explicit Error(std::string message, std::string hint = {}, int exit_code = 1)
        : std::runtime_error(std::move(message)), hint_(std::move(hint)), exit_code_(exit_code) {}

    const std::string& hint() const { return hint_; }
    int exit_code() const { return exit_code_; }

private:
    std::string hint_;
    int exit_code_;
};

// Exit status of an invalid command line, as getopt and argparse tools use.
constexpr int kUsageExitCode = 2;

// Create an Error for an invalid command line (exit status 2).
inline Error usage_error(std::string message, std::string hint) {
    return Error(std::move(message), std::move(hint), kUsageExitCode);
}

// Describe errno value `error` the way strerror does, with its symbolic name.
std::string describe_errno(int error);

}  // namespace memobserve
