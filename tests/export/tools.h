// Helpers for the export tests: run external programs and decode their output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace memobserve::testing {

struct CommandResult {
    int exit_code = -1;
    std::string output;  // standard output
    std::string errors;  // standard error
};

// Run `arguments` (no shell) and collect its output; gives up after
// `timeout_s` seconds through timeout(1) from coreutils.
CommandResult run_command(const std::vector<std::string>& arguments, int timeout_s = 120);

// Full path of `program` found in PATH, or empty.
std::string find_program(const std::string& program);

// True when `program` is installed. Otherwise the test fails under root, where
// scripts/install-deps.sh installs `package`, and is skipped with a warning
// for other users.
bool require_program(const std::string& program, const std::string& package, const char* test_name);

std::string read_file(const std::string& path);
std::string artifacts_dir();

// An 8-bit RGB or RGBA PNG, decoded; throws std::runtime_error on other kinds.
struct Image {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::vector<std::uint8_t> rgb;  // 3 bytes per pixel, rows top to bottom
};
Image decode_png(const std::string& bytes);

}  // namespace memobserve::testing
