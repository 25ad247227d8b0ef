#include "session/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "util/error.h"

namespace memobserve {

namespace {

bool is_executable_file(const std::string& path) {
    struct stat status;
    return stat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode) &&
           access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos)
        return is_executable_file(name) ? name : std::string();
    const char* path = std::getenv("PATH");
    std::stringstream directories(path ? path : "/usr/local/bin:/usr/bin:/bin");
    std::string directory;
    while (std::getline(directories, directory, ':')) {
        std::string candidate = (directory.empty() ? "." : directory) + "/" + name;
        if (is_executable_file(candidate))
            return candidate;
    }
    return {};
}

LaunchedCommand::LaunchedCommand(const std::vector<std::string>& argv) {
    if (argv.empty())
        throw Error("no command given after --", "write the command to trace after --");
    program_ = find_program(argv[0]);
    if (program_.empty())
        throw Error(fmt::format("cannot start command '{}': not found or not executable", argv[0]),
                    "check the name, or give the path of the program");

    int release_pipe[2];
    int error_pipe[2];
    if (pipe2(release_pipe, O_CLOEXEC) != 0)
        throw Error(fmt::format("failed to create a pipe: {}", describe_errno(errno)));
    if (pipe2(error_pipe, O_CLOEXEC) != 0) {
        close(release_pipe[0]);
        close(release_pipe[1]);
        throw Error(fmt::format("failed to create a pipe: {}", describe_errno(errno)));
    }

    std::vector<char*> arguments;
    for (const auto& argument : argv)
        arguments.push_back(const_cast<char*>(argument.c_str()));
    arguments.push_back(nullptr);

    pid_ = fork();
    if (pid_ < 0)
        throw Error(fmt::format("failed to fork: {}", describe_errno(errno)));
    if (pid_ == 0) {
        // Child: wait until the parent closes its end, then exec.
        close(release_pipe[1]);
        close(error_pipe[0]);
        char byte;
        while (read(release_pipe[0], &byte, 1) < 0 && errno == EINTR) {
        }
        execv(program_.c_str(), arguments.data());
        int error = errno;
        (void)!write(error_pipe[1], &error, sizeof(error));
        _exit(127);
    }

    close(release_pipe[0]);
    close(error_pipe[1]);
    release_fd_ = release_pipe[1];
    error_fd_ = error_pipe[0];
}

LaunchedCommand::~LaunchedCommand() {
    if (release_fd_ >= 0)
        close(release_fd_);
    if (error_fd_ >= 0)
        close(error_fd_);
    if (pid_ > 0 && !exit_status_) {
        kill(pid_, SIGTERM);
        int status;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

void LaunchedCommand::release() {
    close(release_fd_);
    release_fd_ = -1;

    int error = 0;
    ssize_t count;
    do {
        count = read(error_fd_, &error, sizeof(error));
    } while (count < 0 && errno == EINTR);
    close(error_fd_);
    error_fd_ = -1;
    if (count == sizeof(error)) {
        poll_exit();
        throw Error(fmt::format("cannot start command '{}': {}", program_, describe_errno(error)),
                    "check that the file is a program for this machine");
    }
}

std::optional<int> LaunchedCommand::poll_exit() {
    if (exit_status_)
        return exit_status_;
    int status;
    if (waitpid(pid_, &status, WNOHANG) != pid_)
        return std::nullopt;
    exit_status_ = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    return exit_status_;
}

}  // namespace memobserve
