#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "session/allocators.h"
#include "session/probe_placement.h"

using namespace memobserve;

namespace {

std::uint64_t offset_in(const std::vector<std::uint8_t>& code, int arguments = 4) {
    return emulated_probe_offset(code.data(), code.size(), arguments);
}

// The start of jemalloc 5.3's free in Debian 12's libjemalloc.so.2: nine
// instructions that read rdi and write rax, rdx and rcx, then jne.
const std::vector<std::uint8_t> kJemallocFree = {
    0x48, 0x89, 0xf8,                                // mov %rdi,%rax
    0x48, 0x8b, 0x15, 0x0e, 0x53, 0x0a, 0x00,        // mov 0xa530e(%rip),%rdx
    0x48, 0x89, 0xf9,                                // mov %rdi,%rcx
    0x48, 0xc1, 0xe8, 0x1a,                          // shr $0x1a,%rax
    0x48, 0x81, 0xe1, 0x00, 0x00, 0x00, 0xc0,        // and $0xffffffffc0000000,%rcx
    0x25, 0xf0, 0x00, 0x00, 0x00,                    // and $0xf0,%eax
    0x64, 0x48, 0x03, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00,  // add %fs:0x0,%rax
    0x48, 0x01, 0xd0,                                // add %rdx,%rax
    0x48, 0x3b, 0x88, 0xb0, 0x01, 0x00, 0x00,        // cmp 0x1b0(%rax),%rcx
    0x0f, 0x85, 0x8a, 0x00, 0x00, 0x00,              // jne
};

}  // namespace

TEST_CASE("probe placement: emulated first instruction", "[probe_placement]") {
    // push %r12; push %rbp
    CHECK(offset_in({0x41, 0x54, 0x55}) == 0);
}

TEST_CASE("probe placement: test before a conditional jump", "[probe_placement]") {
    // test %rdi,%rdi; je +0xbf; push %rbp (the start of glibc 2.36's free)
    CHECK(offset_in({0x48, 0x85, 0xff, 0x0f, 0x84, 0xbf, 0x00, 0x00, 0x00, 0x55}) == 3);
}

TEST_CASE("probe placement: endbr64, test and mov to rax", "[probe_placement]") {
    // endbr64; test %rdi,%rdi; mov $1,%eax; push %rbx (libstdc++'s operator new)
    CHECK(offset_in({0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x85, 0xff, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x53}) == 12);
}

TEST_CASE("probe placement: entry kept before an argument write", "[probe_placement]") {
    // mov %rsi,%rdi; push %rbx
    CHECK(offset_in({0x48, 0x89, 0xf7, 0x53}) == 0);
}

TEST_CASE("probe placement: entry kept before a stack pointer change", "[probe_placement]") {
    // sub $8,%rsp; push %rbx
    CHECK(offset_in({0x48, 0x83, 0xec, 0x08, 0x53}) == 0);
}

TEST_CASE("probe placement: entry kept before a memory write", "[probe_placement]") {
    // mov %rax,(%r8); push %rbx
    CHECK(offset_in({0x49, 0x89, 0x00, 0x53}) == 0);
}

TEST_CASE("probe placement: at most twelve instructions skipped", "[probe_placement]") {
    // Thirteen times test %rax,%rax, then push %rbx.
    std::vector<std::uint8_t> code;
    for (int i = 0; i < 13; ++i)
        code.insert(code.end(), {0x48, 0x85, 0xc0});
    code.push_back(0x53);
    CHECK(offset_in(code) == 0);
    code.erase(code.begin(), code.begin() + 3);
    CHECK(offset_in(code) == 36);
}

TEST_CASE("probe placement: unread arguments may change", "[probe_placement]") {
    // free reads rdi alone: the probe goes on the jne.
    CHECK(offset_in(kJemallocFree, 1) == kJemallocFree.size() - 6);
    // With rdx read as well, the write to rdx keeps the probe on the entry.
    CHECK(offset_in(kJemallocFree, 3) == 0);
}

TEST_CASE("probe placement: frame pointer write", "[probe_placement]") {
    // mov %rsp,%rbp; push %rbx: the stack walk starts at rbp.
    CHECK(offset_in({0x48, 0x89, 0xe5, 0x53}, 1) == 0);
}

TEST_CASE("probe placement: undecodable code keeps the entry", "[probe_placement]") {
    CHECK(offset_in({0x0f, 0xff}) == 0);
    CHECK(offset_in({}) == 0);
}

TEST_CASE("probe placement: the C library of this machine", "[probe_placement]") {
    const std::string path = "/lib/x86_64-linux-gnu/libc.so.6";
    if (access(path.c_str(), R_OK) != 0) {
        WARN("skipped: no " << path);
        return;
    }
    auto file = inspect_allocator_file(path);
    REQUIRE(file);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    for (const auto& function : file->functions) {
        INFO(function.name << " probed at file offset " << function.file_offset);
        std::uint8_t code[16] = {};
        REQUIRE(pread(fd, code, sizeof(code), static_cast<off_t>(function.file_offset)) == sizeof(code));
        // Where a probe moved, it sits on an emulated instruction.
        if (emulated_probe_offset(code, sizeof(code)) != 0)
            FAIL("the probe of " << function.name << " is not on an emulated instruction");
        // glibc's free starts with a test: its probe is on the jump after it.
        if (function.name == "free") {
            bool near_jump = code[0] == 0x0f && (code[1] & 0xf0) == 0x80;
            bool short_jump = (code[0] & 0xf0) == 0x70;
            CHECK((near_jump || short_jump));
        }
    }
    close(fd);
}

TEST_CASE("probe placement: jemalloc's free", "[probe_placement]") {
    const std::string path = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if (access(path.c_str(), R_OK) != 0) {
        WARN("skipped: no " << path << " (apt-get install libjemalloc2)");
        return;
    }
    auto file = inspect_allocator_file(path);
    REQUIRE(file);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    bool found = false;
    for (const auto& function : file->functions) {
        if (function.name != "free")
            continue;
        found = true;
        std::uint8_t code[2] = {};
        REQUIRE(pread(fd, code, sizeof(code), static_cast<off_t>(function.file_offset)) == 2);
        // Its probe is on the conditional jump after nine other instructions.
        bool near_jump = code[0] == 0x0f && (code[1] & 0xf0) == 0x80;
        bool short_jump = (code[0] & 0xf0) == 0x70;
        CHECK((near_jump || short_jump));
    }
    CHECK(found);
    close(fd);
}
