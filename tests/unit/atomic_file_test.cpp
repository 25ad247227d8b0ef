// Failed writes leave nothing behind: a full file system and a read-only one,
// each a small tmpfs mounted in a private mount namespace of a child process.
#include "util/atomic_file.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "util/error.h"

using namespace memobserve;
namespace fs = std::filesystem;

namespace {

// Outcomes of the child, as exit codes.
enum ChildResult {
    kPassed = 0,
    kNoNamespace = 10,
    kNoMount = 11,
    kWriteSucceeded = 12,
    kWrongMessage = 13,
    kFileLeft = 14,
};

bool directory_is_empty(const fs::path& directory) {
    return fs::directory_iterator(directory) == fs::directory_iterator();
}

// Try to write `size` bytes into `directory`; the write must fail with an
// Error that names the file, and leave the directory empty.
int expect_failed_write(const fs::path& directory, std::size_t size) {
    std::string path = (directory / "snapshot.json").string();
    try {
        write_file_atomically(path, std::string(size, 'x'));
        return kWriteSucceeded;
    } catch (const Error& error) {
        if (std::strstr(error.what(), path.c_str()) == nullptr)
            return kWrongMessage;
    }
    return directory_is_empty(directory) ? kPassed : kFileLeft;
}

int run_in_private_mounts(const fs::path& directory) {
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return kNoNamespace;
    if (mount("tmpfs", directory.c_str(), "tmpfs", 0, "size=64k,mode=0700") != 0)
        return kNoMount;
    // Larger than the file system: the write fails part way.
    if (int result = expect_failed_write(directory, 1 << 20); result != kPassed)
        return result;
    if (mount(nullptr, directory.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0)
        return kNoMount;
    return expect_failed_write(directory, 16);
}

}  // namespace

TEST_CASE("failed writes leave no partial file", "[atomic_file]") {
    if (geteuid() != 0) {
        WARN("SKIPPED failed writes leave no partial file: mounting a small tmpfs needs root");
        return;
    }
    fs::path directory = fs::temp_directory_path() / ("memobserve-full-" + std::to_string(getpid()));
    fs::create_directory(directory);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0)
        _exit(run_in_private_mounts(directory));
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    fs::remove_all(directory);

    REQUIRE(WIFEXITED(status));
    int result = WEXITSTATUS(status);
    INFO("child result " << result << " (10: no mount namespace, 11: no tmpfs, 12: write succeeded, "
                                      "13: message without the path, 14: file left behind)");
    CHECK(result == kPassed);
}
