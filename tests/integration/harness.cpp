#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <catch2/catch.hpp>

#include "snapshot_schema.h"

namespace memobserve::testing {

bool have_root(const char* test_name) {
    if (geteuid() == 0)
        return true;
    WARN("SKIPPED " << test_name << ": needs root to load BPF programs (run the tests with sudo)");
    return false;
}

std::string workload(const std::string& name) { return std::string(WORKLOADS_DIR) + "/" + name; }

std::string memobserve_binary() { return MEMOBSERVE_BINARY; }

std::string temporary_path(const std::string& name) {
    return "/tmp/memobserve-test-" + std::to_string(getpid()) + "-" + name;
}

Child::Child(const std::vector<std::string>& argv, const std::vector<std::string>& environment) {
    int input[2];
    int output[2];
    if (pipe2(input, O_CLOEXEC) != 0 || pipe2(output, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe failed");
    static int counter = 0;
    stderr_path_ = temporary_path("stderr-" + std::to_string(counter++));

    pid_ = fork();
    if (pid_ == 0) {
        dup2(input[0], 0);
        dup2(output[1], 1);
        int error_fd = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(error_fd, 2);
        for (const auto& assignment : environment)
            putenv(const_cast<char*>(assignment.c_str()));
        std::vector<char*> arguments;
        for (const auto& argument : argv)
            arguments.push_back(const_cast<char*>(argument.c_str()));
        arguments.push_back(nullptr);
        execv(arguments[0], arguments.data());
        _exit(127);
    }
    close(input[0]);
    close(output[1]);
    stdin_fd_ = input[1];
    stdout_fd_ = output[0];
}

Child::~Child() {
    close_stdin();
    if (!reaped_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (stdout_fd_ >= 0)
        close(stdout_fd_);
    unlink(stderr_path_.c_str());
}

void Child::write_line(const std::string& line) {
    std::string text = line + "\n";
    if (write(stdin_fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        throw std::runtime_error("write to child failed");
}

void Child::close_stdin() {
    if (stdin_fd_ >= 0)
        close(stdin_fd_);
    stdin_fd_ = -1;
}

bool Child::wait_for_line(const std::string& line, int timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
        auto newline = pending_.find('\n');
        while (newline != std::string::npos) {
            std::string current = pending_.substr(0, newline);
            pending_.erase(0, newline + 1);
            if (current == line)
                return true;
            newline = pending_.find('\n');
        }
        pollfd descriptor = {stdout_fd_, POLLIN, 0};
        if (poll(&descriptor, 1, 200) <= 0)
            continue;
        char buffer[4096];
        ssize_t count = read(stdout_fd_, buffer, sizeof(buffer));
        if (count <= 0)
            return false;
        stdout_text_.append(buffer, static_cast<std::size_t>(count));
        pending_.append(buffer, static_cast<std::size_t>(count));
    }
    return false;
}

std::string Child::stderr_text() const {
    std::ifstream file(stderr_path_);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

bool Child::wait_for_stderr(const std::string& text, int timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
        if (stderr_text().find(text) != std::string::npos)
            return true;
        if (!reaped_ && waitpid(pid_, &status_, WNOHANG) == pid_)
            reaped_ = true;
        if (reaped_)
            return stderr_text().find(text) != std::string::npos;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

void Child::signal(int signal_number) {
    if (!reaped_)
        kill(pid_, signal_number);
}

int Child::wait(int timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (!reaped_) {
        // Keep reading stdout so that a chatty child never blocks on a full pipe.
        char buffer[4096];
        pollfd descriptor = {stdout_fd_, POLLIN, 0};
        if (poll(&descriptor, 1, 50) > 0) {
            ssize_t count = read(stdout_fd_, buffer, sizeof(buffer));
            if (count > 0)
                stdout_text_.append(buffer, static_cast<std::size_t>(count));
        }
        if (waitpid(pid_, &status_, WNOHANG) == pid_)
            reaped_ = true;
        else if (std::chrono::steady_clock::now() > deadline)
            return -1;
    }
    char buffer[4096];
    ssize_t count;
    while ((count = read(stdout_fd_, buffer, sizeof(buffer))) > 0)
        stdout_text_.append(buffer, static_cast<std::size_t>(count));
    return WIFSIGNALED(status_) ? 128 + WTERMSIG(status_) : WEXITSTATUS(status_);
}

nlohmann::json snapshot_of_workload(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& memobserve_options,
                                    const std::vector<std::string>& environment) {
    Child target(argv, environment);
    REQUIRE(target.wait_for_line("ready"));

    std::string output = temporary_path("snapshot.json");
    std::vector<std::string> command = {memobserve_binary(), "snapshot", "-p",
                                        std::to_string(target.pid()), "--duration", "3600",
                                        "-o", output};
    command.insert(command.end(), memobserve_options.begin(), memobserve_options.end());
    Child tracer(command);
    INFO("memobserve stderr: " << tracer.stderr_text());
    REQUIRE(tracer.wait_for_stderr("memobserve: tracing"));

    target.write_line("go");
    REQUIRE(target.wait_for_line("done", 900));
    tracer.signal(SIGINT);
    int status = tracer.wait();
    INFO("memobserve stderr: " << tracer.stderr_text());
    REQUIRE(status == 0);
    target.close_stdin();
    REQUIRE(target.wait() == 0);

    std::ifstream file(output);
    REQUIRE(file.good());
    nlohmann::json snapshot = nlohmann::json::parse(file);
    check_snapshot_schema(output);
    unlink(output.c_str());
    return snapshot;
}

std::string calling_function(const nlohmann::json& stack) {
    for (const auto& frame : stack.at("frames")) {
        std::string module = frame.at("module").get<std::string>();
        std::string base = module.substr(module.rfind('/') + 1);
        if (base.rfind("libc.so", 0) == 0 || base.rfind("libstdc++", 0) == 0 ||
            base.rfind("ld-linux", 0) == 0 || base.rfind("libjemalloc", 0) == 0)
            continue;
        return frame.at("symbol").is_null() ? "" : frame.at("symbol").get<std::string>();
    }
    return "";
}

std::uint64_t sum_where(const nlohmann::json& snapshot,
                        const std::function<bool(const nlohmann::json&)>& predicate,
                        const std::string& field) {
    std::uint64_t sum = 0;
    for (const auto& stack : snapshot.at("stacks"))
        if (predicate(stack))
            sum += stack.at(field).get<std::uint64_t>();
    return sum;
}

std::uint64_t sum_at(const nlohmann::json& snapshot, const std::string& function,
                     const std::string& field) {
    return sum_where(
        snapshot, [&](const nlohmann::json& stack) { return calling_function(stack) == function; },
        field);
}

bool file_exists(const std::string& path) {
    struct stat status;
    return stat(path.c_str(), &status) == 0;
}

std::string command_output(const std::string& command) {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    std::string output;
    std::array<char, 4096> buffer;
    while (pipe && fgets(buffer.data(), buffer.size(), pipe.get()))
        output += buffer.data();
    return output;
}

std::size_t memobserve_programs() {
    static const char* const names[] = {"allocator_enter", "allocator_retur", "vm_syscall_ente",
                                        "user_page_fault", "process_fork", "kernel_page_fau"};
    std::string text = command_output("bpftool prog list 2>&1");
    std::size_t count = 0;
    for (const char* name : names) {
        std::string pattern = std::string("name ") + name;
        for (std::size_t at = text.find(pattern); at != std::string::npos; at = text.find(pattern, at + 1))
            ++count;
    }
    return count;
}

std::size_t page_fault_links() {
    std::string text = command_output("bpftool link list 2>&1");
    std::size_t count = 0;
    for (std::size_t at = text.find("'page_fault_user'"); at != std::string::npos;
         at = text.find("'page_fault_user'", at + 1))
        ++count;
    return count;
}

std::size_t links_of_program(const std::string& name) {
    // "ID: TYPE  name NAME  tag ..." and "ID: TYPE  prog PROGRAM_ID".
    std::set<std::string> programs;
    std::istringstream prog_list(command_output("bpftool prog list 2>&1"));
    for (std::string line; std::getline(prog_list, line);) {
        if (line.find(" name " + name + " ") != std::string::npos)
            programs.insert(line.substr(0, line.find(':')));
    }
    std::size_t count = 0;
    std::istringstream link_list(command_output("bpftool link list 2>&1"));
    for (std::string line; std::getline(link_list, line);) {
        auto at = line.find(" prog ");
        if (at == std::string::npos)
            continue;
        std::string program = line.substr(at + 6);
        program = program.substr(0, program.find_first_of(" \t"));
        count += programs.count(program);
    }
    return count;
}

bool programs_return_to(std::size_t expected) {
    for (int attempt = 0; attempt < 300; ++attempt) {
        if (memobserve_programs() == expected)
            return true;
        usleep(200 * 1000);
    }
    return false;
}

Run run_memobserve(const std::vector<std::string>& arguments) {
    std::vector<std::string> command = {memobserve_binary()};
    command.insert(command.end(), arguments.begin(), arguments.end());
    Child child(command);
    child.close_stdin();
    int status = child.wait(120);
    return {status, child.stdout_text(), child.stderr_text(), child.pid()};
}

}  // namespace memobserve::testing
