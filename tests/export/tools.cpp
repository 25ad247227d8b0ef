#include "tools.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <catch2/catch.hpp>

namespace memobserve::testing {

namespace {

std::string temporary_path(const std::string& name) {
    return "/tmp/memobserve-export-test-" + std::to_string(getpid()) + "-" + name;
}

std::uint32_t big_endian32(const std::string& bytes, std::size_t at) {
    return (std::uint32_t(std::uint8_t(bytes[at])) << 24) | (std::uint32_t(std::uint8_t(bytes[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(bytes[at + 2])) << 8) | std::uint32_t(std::uint8_t(bytes[at + 3]));
}

std::vector<std::uint8_t> inflate_zlib(const std::string& compressed, std::size_t expected_size) {
    std::vector<std::uint8_t> data(expected_size);
    uLongf size = expected_size;
    if (uncompress(data.data(), &size, reinterpret_cast<const Bytef*>(compressed.data()),
                   compressed.size()) != Z_OK ||
        size != expected_size)
        throw std::runtime_error("PNG image data does not inflate to the expected size");
    return data;
}

int paeth(int left, int up, int up_left) {
    int estimate = left + up - up_left;
    int to_left = std::abs(estimate - left);
    int to_up = std::abs(estimate - up);
    int to_up_left = std::abs(estimate - up_left);
    if (to_left <= to_up && to_left <= to_up_left)
        return left;
    return to_up <= to_up_left ? up : up_left;
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& arguments, int timeout_s) {
    std::string output_path = temporary_path("stdout");
    std::string errors_path = temporary_path("stderr");
    // Buffered output of this process would otherwise be written again by the child.
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        int output_fd = open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int errors_fd = open(errors_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (output_fd < 0 || errors_fd < 0 || dup2(output_fd, 1) < 0 || dup2(errors_fd, 2) < 0)
            _exit(126);
        std::vector<std::string> command = {"timeout", std::to_string(timeout_s)};
        command.insert(command.end(), arguments.begin(), arguments.end());
        std::vector<char*> argv;
        for (auto& argument : command)
            argv.push_back(argument.data());
        argv.push_back(nullptr);
        execvp(argv[0], argv.data());
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CommandResult result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.output = read_file(output_path);
    result.errors = read_file(errors_path);
    unlink(output_path.c_str());
    unlink(errors_path.c_str());
    return result;
}

std::string find_program(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::stringstream directories(path ? path : "/usr/bin:/bin");
    std::string directory;
    while (std::getline(directories, directory, ':')) {
        std::string candidate = directory + "/" + program;
        if (access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return "";
}

bool require_program(const std::string& program, const std::string& package, const char* test_name) {
    if (!find_program(program).empty())
        return true;
    if (geteuid() == 0)
        FAIL(program << " not found in PATH: install Debian's " << package
                     << " (scripts/install-deps.sh does)");
    WARN("SKIPPED " << test_name << ": " << program << " not found; install Debian's " << package);
    return false;
}

std::string read_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

std::string artifacts_dir() {
    mkdir(ARTIFACTS_DIR, 0755);
    return ARTIFACTS_DIR;
}

Image decode_png(const std::string& bytes) {
    if (bytes.size() < 8 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0)
        throw std::runtime_error("not a PNG file");
    Image image;
    int channels = 0;
    std::string compressed;
    for (std::size_t at = 8; at + 12 <= bytes.size();) {
        std::uint32_t length = big_endian32(bytes, at);
        std::string type = bytes.substr(at + 4, 4);
        if (at + 12 + length > bytes.size())
            throw std::runtime_error("PNG chunk " + type + " runs past the end of the file");
        std::string body = bytes.substr(at + 8, length);
        if (type == "IHDR") {
            image.width = big_endian32(body, 0);
            image.height = big_endian32(body, 4);
            int depth = std::uint8_t(body[8]);
            int colour_type = std::uint8_t(body[9]);
            int interlace = std::uint8_t(body[12]);
            if (depth != 8 || (colour_type != 2 && colour_type != 6) || interlace != 0)
                throw std::runtime_error("only 8-bit, non-interlaced RGB or RGBA PNG files are decoded");
            channels = colour_type == 2 ? 3 : 4;
        } else if (type == "IDAT") {
            compressed += body;
        }
        at += 12 + length;
    }
    if (channels == 0)
        throw std::runtime_error("PNG file without IHDR chunk");

    // Each row starts with a filter byte: the row's bytes are differences from
    // a prediction out of the pixel to the left, the row above, or both.
    std::size_t stride = std::size_t(image.width) * channels;
    std::vector<std::uint8_t> raw = inflate_zlib(compressed, (stride + 1) * image.height);
    std::vector<std::uint8_t> previous(stride, 0);
    std::vector<std::uint8_t> current(stride);
    image.rgb.reserve(std::size_t(image.width) * image.height * 3);
    for (std::uint32_t row = 0; row < image.height; ++row) {
        const std::uint8_t* line = &raw[row * (stride + 1)];
        int filter = line[0];
        for (std::size_t i = 0; i < stride; ++i) {
            int left = i >= std::size_t(channels) ? current[i - channels] : 0;
            int up = previous[i];
            int up_left = i >= std::size_t(channels) ? previous[i - channels] : 0;
            int predictor = 0;
            switch (filter) {
            case 0: predictor = 0; break;
            case 1: predictor = left; break;
            case 2: predictor = up; break;
            case 3: predictor = (left + up) / 2; break;
            case 4: predictor = paeth(left, up, up_left); break;
            default: throw std::runtime_error("invalid PNG row filter " + std::to_string(filter));
            }
            current[i] = static_cast<std::uint8_t>(line[1 + i] + predictor);
        }
        for (std::uint32_t x = 0; x < image.width; ++x)
            for (int c = 0; c < 3; ++c)
                image.rgb.push_back(current[x * channels + c]);
        previous.swap(current);
    }
    return image;
}

}  // namespace memobserve::testing
