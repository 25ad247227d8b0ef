#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

#include "util/error.h"

namespace memobserve {

namespace {

std::string directory_of(const std::string& path) {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

// Create the hidden temporary file next to `path` that a write renames into
// place, and return its descriptor (-1 with errno on failure).
int create_temporary(const std::string& path, std::string& temporary) {
    temporary = fmt::format("{}/.{}.XXXXXX", directory_of(path),
                            std::filesystem::path(path).filename().string());
    return mkostemp(temporary.data(), O_CLOEXEC);
}

// rename() would replace a device node, FIFO or socket at `path` with a
// regular file: /dev/null as an output path, run as root, would become one.
void reject_special_file(const std::string& path) {
    struct stat status;
    if (lstat(path.c_str(), &status) != 0 || S_ISREG(status.st_mode) || S_ISLNK(status.st_mode) ||
        S_ISDIR(status.st_mode))
        return;
    throw Error(fmt::format("cannot write '{}': it is a device, FIFO or socket, not a regular file", path),
                "give the name of a regular file with -o FILE");
}

}  // namespace

void check_output_path(const std::string& path) {
    if (path.empty())
        throw Error("empty output path", "give a file name with -o FILE");
    std::string directory = directory_of(path);
    struct stat status;
    if (stat(directory.c_str(), &status) != 0 || !S_ISDIR(status.st_mode))
        throw Error(fmt::format("cannot write '{}': directory '{}' does not exist", path, directory),
                    "create the directory or choose another -o path");
    if (access(directory.c_str(), W_OK) != 0)
        throw Error(fmt::format("cannot write '{}': directory '{}' is not writable: {}", path,
                                directory, describe_errno(errno)),
                    "choose another -o path");
    if (stat(path.c_str(), &status) == 0 && S_ISDIR(status.st_mode))
        throw Error(fmt::format("cannot write '{}': it is a directory", path),
                    "give a file name with -o FILE");
    reject_special_file(path);
    // Some directories pass the checks above and still accept no new file,
    // /proc for one. Try the temporary file that the write will need, so that
    // a long trace does not end in this error.
    std::string trial;
    int fd = create_temporary(path, trial);
    if (fd < 0)
        throw Error(fmt::format("cannot write '{}': cannot create a file in '{}': {}", path,
                                directory, describe_errno(errno)),
                    "choose another -o path");
    close(fd);
    unlink(trial.c_str());
}

void write_file_atomically(const std::string& path, const std::string& contents) {
    reject_special_file(path);
    std::string temporary;
    int fd = create_temporary(path, temporary);
    if (fd < 0)
        throw Error(fmt::format("cannot write '{}': {}", path, describe_errno(errno)));

    auto fail = [&](int error) {
        close(fd);
        unlink(temporary.c_str());
        throw Error(fmt::format("cannot write '{}': {}", path, describe_errno(error)),
                    "check free space and permissions of the directory");
    };

    // mkostemp creates the file with mode 0600 already; keep it that way.
    std::size_t written = 0;
    while (written < contents.size()) {
        ssize_t count = write(fd, contents.data() + written, contents.size() - written);
        if (count < 0) {
            if (errno == EINTR)
                continue;
            fail(errno);
        }
        written += static_cast<std::size_t>(count);
    }
    if (fsync(fd) != 0)
        fail(errno);
    if (close(fd) != 0) {
        int error = errno;
        unlink(temporary.c_str());
        throw Error(fmt::format("cannot write '{}': {}", path, describe_errno(error)));
    }
    if (rename(temporary.c_str(), path.c_str()) != 0) {
        int error = errno;
        unlink(temporary.c_str());
        throw Error(fmt::format("cannot write '{}': {}", path, describe_errno(error)));
    }
}

}  // namespace memobserve
