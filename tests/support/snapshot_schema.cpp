#include "snapshot_schema.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>

#include <catch2/catch.hpp>

namespace memobserve::testing {

namespace {

// Debian's interpreter, which python3-jsonschema installs into, rather than
// whichever python3 comes first in PATH.
constexpr const char* kPython = "/usr/bin/python3";

std::string quoted(const std::string& text) {
    std::string result = "'";
    for (char character : text)
        result += character == '\'' ? std::string("'\\''") : std::string(1, character);
    return result + "'";
}

}  // namespace

SchemaCheck validate_snapshot_file(const std::string& path) {
    SchemaCheck check;
    if (access(kPython, X_OK) != 0) {
        check.messages = std::string(kPython) + " not found: install python3-jsonschema";
        return check;
    }
    std::string command = std::string(kPython) + " " + quoted(SNAPSHOT_VALIDATOR) + " " +
                          quoted(SNAPSHOT_SCHEMA) + " " + quoted(path) + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        check.messages = "popen failed for: " + command;
        return check;
    }
    std::array<char, 4096> buffer;
    while (fgets(buffer.data(), buffer.size(), pipe))
        check.messages += buffer.data();
    int status = pclose(pipe);
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

    check.validator_found = exit_code == 0 || exit_code == 1;
    check.valid = exit_code == 0;
    return check;
}

void check_snapshot_schema(const std::string& path) {
    SchemaCheck check = validate_snapshot_file(path);
    if (!check.validator_found) {
        if (geteuid() == 0)
            FAIL("cannot validate " << path << " against the snapshot schema: " << check.messages);
        WARN("SKIPPED schema check of " << path << ": " << check.messages);
        return;
    }
    INFO("schema violations of " << path << ":\n" << check.messages);
    CHECK(check.valid);
}

void check_snapshot_schema(const nlohmann::json& document) {
    std::string path = "/tmp/memobserve-schema-" + std::to_string(getpid()) + ".json";
    std::ofstream(path) << document.dump();
    check_snapshot_schema(path);
    unlink(path.c_str());
}

}  // namespace memobserve::testing
