#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/snapshot.h"
#include "symbolizer/symbolizer.h"

namespace memobserve_test {

const int kLeafFunctionLine = __LINE__ + 2;
// noinline and the empty asm keep a real function body at a known address.
__attribute__((noinline)) int leaf_function(int value) {
    asm volatile("");
    return value * 3 + 1;
}

__attribute__((noinline)) double function_with_arguments(const std::vector<int>& values,
                                                         double scale) {
    asm volatile("");
    return static_cast<double>(values.size()) * scale;
}

}  // namespace memobserve_test

namespace {

using memobserve::Frame;
using memobserve::Symbolizer;

template <typename Function>
std::uint64_t address_of(Function* function) {
    return reinterpret_cast<std::uint64_t>(function);
}

Frame symbolize_one(Symbolizer& symbolizer, std::uint64_t address) {
    const auto frames = symbolizer.symbolize(getpid(), {address});
    REQUIRE(frames.size() == 1);
    return frames[0];
}

// First address after `start` that the symbolizer does not place in the same
// function, searched up to `limit` bytes.
std::uint64_t function_end(Symbolizer& symbolizer, std::uint64_t start, std::uint64_t limit) {
    const std::string name = symbolize_one(symbolizer, start).symbol;
    std::uint64_t address = start + 1;
    while (address < start + limit && symbolize_one(symbolizer, address).symbol == name)
        ++address;
    return address;
}

// Load address of the first PT_LOAD segment of the main executable, and that
// segment's p_vaddr.
struct LoadSegment {
    std::uint64_t address = 0;
    std::uint64_t vaddr = 0;
};

LoadSegment main_executable_segment() {
    LoadSegment segment;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) {
            auto* result = static_cast<LoadSegment*>(data);
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                if (info->dlpi_phdr[i].p_type != PT_LOAD)
                    continue;
                result->vaddr = info->dlpi_phdr[i].p_vaddr;
                result->address = info->dlpi_addr + result->vaddr;
                break;
            }
            return 1;  // the main executable comes first
        },
        &segment);
    return segment;
}

}  // namespace

TEST_CASE("symbolizer resolves function in own executable", "[symbolizer]") {
    Symbolizer symbolizer;
    const auto address = address_of(&memobserve_test::leaf_function);
    const Frame frame = symbolize_one(symbolizer, address);

    CHECK(frame.address == address);
    CHECK(frame.symbol == "memobserve_test::leaf_function(int)");
    CHECK(frame.offset == 0);
    CHECK(frame.module.ends_with("unit_tests"));
    CHECK(frame.file.ends_with("symbolizer_test.cpp"));
    CHECK(frame.line >= memobserve_test::kLeafFunctionLine);
    CHECK(frame.line <= memobserve_test::kLeafFunctionLine + 3);
}

TEST_CASE("symbolizer demangles function arguments", "[symbolizer]") {
    Symbolizer symbolizer;
    const Frame frame =
        symbolize_one(symbolizer, address_of(&memobserve_test::function_with_arguments));

    CHECK(frame.symbol ==
          "memobserve_test::function_with_arguments(std::vector<int, std::allocator<int> > "
          "const&, double)");
}

TEST_CASE("symbolizer resolves libc function", "[symbolizer]") {
    Symbolizer symbolizer;
    void* getpid_address = dlsym(RTLD_DEFAULT, "getpid");
    REQUIRE(getpid_address != nullptr);
    const Frame frame = symbolize_one(symbolizer, reinterpret_cast<std::uint64_t>(getpid_address));

    CHECK(frame.module.find("libc.so") != std::string::npos);
    CHECK(frame.symbol.find("getpid") != std::string::npos);
    CHECK(frame.offset == 0);
}

TEST_CASE("symbolizer gives module offset without symbol", "[symbolizer]") {
    // The ELF header at the start of the first segment belongs to no function.
    const LoadSegment segment = main_executable_segment();
    REQUIRE(segment.address != 0);
    Symbolizer symbolizer;
    const Frame frame = symbolize_one(symbolizer, segment.address + 0x10);

    CHECK(frame.symbol.empty());
    CHECK(frame.module.ends_with("unit_tests"));
    CHECK(frame.offset == segment.vaddr + 0x10);
}

TEST_CASE("symbolizer finds no symbol in anonymous mapping", "[symbolizer]") {
    const std::size_t size = 4096;
    void* region = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(region != MAP_FAILED);
    const auto address = reinterpret_cast<std::uint64_t>(region) + 0x20;

    Symbolizer symbolizer;
    const Frame frame = symbolize_one(symbolizer, address);
    munmap(region, size);

    CHECK(frame.symbol.empty());
    CHECK(frame.module == "[unknown]");
    CHECK(frame.offset == address);
    CHECK(frame.line == 0);
}

TEST_CASE("symbolizer marks address outside mappings unknown", "[symbolizer]") {
    Symbolizer symbolizer;
    const Frame frame = symbolize_one(symbolizer, 0x10);

    CHECK(frame.address == 0x10);
    CHECK(frame.symbol.empty());
    CHECK(frame.module == "[unknown]");
    CHECK(frame.offset == 0x10);
    CHECK(frame.file.empty());
    CHECK(frame.line == 0);
}

TEST_CASE("symbolizer looks up return address before call", "[symbolizer]") {
    Symbolizer symbolizer;
    const auto start = address_of(&memobserve_test::leaf_function);
    const auto end = function_end(symbolizer, start, 4096);
    REQUIRE(end > start + 1);

    // As the innermost frame, `end` lies outside leaf_function.
    const auto frames = symbolizer.symbolize(getpid(), {end, end});
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].symbol != "memobserve_test::leaf_function(int)");

    // As a return address, `end` is looked up as end - 1, the last byte of
    // leaf_function.
    CHECK(frames[1].address == end);
    CHECK(frames[1].symbol == "memobserve_test::leaf_function(int)");
    CHECK(frames[1].offset == end - start);
    CHECK(frames[1].file.ends_with("symbolizer_test.cpp"));
    CHECK(frames[1].line > 0);
}

TEST_CASE("symbolizer keeps exited process until forget", "[symbolizer]") {
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }

    // The child is a copy of this process, so the function has the same address.
    const auto address = address_of(&memobserve_test::leaf_function);
    Symbolizer symbolizer;
    CHECK(symbolizer.symbolize(child, {address})[0].symbol == "memobserve_test::leaf_function(int)");

    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);

    CHECK(symbolizer.symbolize(child, {address})[0].symbol == "memobserve_test::leaf_function(int)");
    symbolizer.refresh(child);
    CHECK(symbolizer.symbolize(child, {address})[0].symbol == "memobserve_test::leaf_function(int)");

    symbolizer.forget(child);
    const Frame frame = symbolizer.symbolize(child, {address})[0];
    CHECK(frame.module == "[unknown]");
    CHECK(frame.symbol.empty());
    CHECK(frame.offset == address);
}

TEST_CASE("symbolizer reads file deleted after mapping", "[symbolizer]") {
    if (geteuid() != 0) {
        WARN("skipped: /proc/PID/map_files needs root");
        return;
    }
    void* zlib_version = dlsym(RTLD_DEFAULT, "zlibVersion");
    if (zlib_version == nullptr) {
        WARN("skipped: zlib is not loaded in this process");
        return;
    }
    Dl_info info{};
    REQUIRE(dladdr(zlib_version, &info) != 0);

    // A copy under a new path is a separate module that can be deleted safely.
    const auto copy = std::filesystem::temp_directory_path() /
                      ("symbolizer_test_zlib_" + std::to_string(getpid()) + ".so");
    std::filesystem::copy_file(info.dli_fname, copy,
                               std::filesystem::copy_options::overwrite_existing);
    void* handle = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    std::filesystem::remove(copy);
    REQUIRE(handle != nullptr);
    void* copied_function = dlsym(handle, "zlibVersion");
    REQUIRE(copied_function != nullptr);

    Symbolizer symbolizer;
    const Frame frame = symbolize_one(symbolizer, reinterpret_cast<std::uint64_t>(copied_function));
    dlclose(handle);

    CHECK(frame.module == copy.string() + " (deleted)");
    CHECK(frame.symbol == "zlibVersion");
    CHECK(frame.offset == 0);
}

TEST_CASE("symbolizer shares files by build id", "[symbolizer]") {
    void* zlib_version = dlsym(RTLD_DEFAULT, "zlibVersion");
    if (zlib_version == nullptr) {
        WARN("skipped: zlib is not loaded in this process");
        return;
    }
    Dl_info info{};
    REQUIRE(dladdr(zlib_version, &info) != 0);
    Symbolizer before;
    symbolize_one(before, address_of(&memobserve_test::leaf_function));

    // Two copies of the loaded zlib: other paths and inodes, the same build id.
    std::vector<std::filesystem::path> copies;
    std::vector<void*> handles;
    for (int i = 0; i < 2; ++i) {
        copies.push_back(std::filesystem::temp_directory_path() /
                         ("symbolizer_test_build_id_" + std::to_string(getpid()) + "_" +
                          std::to_string(i) + ".so"));
        std::filesystem::copy_file(info.dli_fname, copies.back(),
                                   std::filesystem::copy_options::overwrite_existing);
        handles.push_back(dlopen(copies.back().c_str(), RTLD_NOW | RTLD_LOCAL));
        REQUIRE(handles.back() != nullptr);
    }

    Symbolizer after;
    for (std::size_t i = 0; i < copies.size(); ++i) {
        void* function = dlsym(handles[i], "zlibVersion");
        REQUIRE(function != nullptr);
        REQUIRE(function != zlib_version);
        const Frame frame = symbolize_one(after, reinterpret_cast<std::uint64_t>(function));
        CHECK(frame.symbol == "zlibVersion");
        CHECK(frame.module == copies[i].string());
    }
    // The copies added mapped files, and no ELF file to read.
    CHECK(after.open_elf_files() == before.open_elf_files());

    for (std::size_t i = 0; i < copies.size(); ++i) {
        dlclose(handles[i]);
        std::filesystem::remove(copies[i]);
    }
}

TEST_CASE("frame display with symbol and line", "[frame]") {
    Frame frame;
    frame.symbol = "parse_header(char const*)";
    frame.module = "/usr/lib/x86_64-linux-gnu/libfoo.so.6";
    frame.offset = 0x1f;
    CHECK(frame.display() == "parse_header(char const*)+0x1f (libfoo.so.6)");

    frame.file = "/src/foo/parse.c";
    frame.line = 12;
    CHECK(frame.display() == "parse_header(char const*)+0x1f (libfoo.so.6) parse.c:12");
}

TEST_CASE("frame display without symbol", "[frame]") {
    Frame frame;
    frame.module = "/opt/app/bin/server";
    frame.offset = 0x1234;
    CHECK(frame.display() == "server+0x1234");

    frame.module = "[unknown]";
    frame.offset = 0x10;
    CHECK(frame.display() == "[unknown]+0x10");
}
