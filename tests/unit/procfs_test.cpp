#include "collectors/procfs.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "util/error.h"

using namespace memobserve;

namespace {

std::string read_fixture(const std::string& name) {
    auto text = read_text_file(std::string(FIXTURES_DIR) + "/procfs/" + name);
    REQUIRE(text);
    return *text;
}

// Far above any pid_max the kernel allows (2^22), so no process has it.
constexpr int kMissingPid = INT_MAX;

}  // namespace

TEST_CASE("parse_maps real file", "[procfs]") {
    auto entries = parse_maps(read_fixture("maps_cat.txt"));
    REQUIRE(entries.size() == 38);

    const MapsEntry& first = entries[0];
    CHECK(first.start == 0x563e09ae9000);
    CHECK(first.end == 0x563e09aeb000);
    CHECK(first.readable);
    CHECK_FALSE(first.writable);
    CHECK_FALSE(first.executable);
    CHECK_FALSE(first.shared);
    CHECK(first.offset == 0);
    CHECK(first.dev_major == 0xfe);
    CHECK(first.dev_minor == 0);
    CHECK(first.inode == 247134);
    CHECK(first.path == "/usr/bin/cat");
    CHECK(first.is_file());
    CHECK_FALSE(first.deleted);

    CHECK(entries[1].executable);
    CHECK(entries[1].offset == 0x2000);
    CHECK(entries[5].path == "[heap]");
    CHECK_FALSE(entries[5].is_file());

    // An anonymous mapping without a name. The real line ends in one space.
    CHECK(entries[6].path.empty());
    CHECK(entries[6].inode == 0);

    CHECK(entries[29].path == "[vvar_vclock]");
    CHECK(entries[30].path == "[vdso]");
    CHECK(entries[35].path == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    CHECK(entries[35].offset == 0x33000);
    CHECK(entries[36].path == "[stack]");
    CHECK(entries[37].start == 0xffffffffff600000);
    CHECK(entries[37].path == "[vsyscall]");
}

TEST_CASE("parse_maps crafted lines", "[procfs]") {
    auto entries = parse_maps(read_fixture("maps_crafted.txt"));
    REQUIRE(entries.size() == 9);

    CHECK(entries[0].path == "/usr/bin/my program");
    CHECK(entries[0].dev_major == 8);
    CHECK(entries[0].dev_minor == 2);

    // Majors above 255 print with three hex digits, as for NVMe (259).
    CHECK(entries[1].dev_major == 259);
    CHECK(entries[1].dev_minor == 10);
    CHECK(entries[1].offset == 0x51000);

    CHECK(entries[2].path == "/memfd:pool");
    CHECK(entries[2].deleted);
    CHECK(entries[2].shared);
    CHECK(entries[2].offset == 0x1000);

    CHECK(entries[3].path == "/tmp/old lib.so");
    CHECK(entries[3].deleted);
    CHECK(entries[3].dev_major == 0xfd);
    CHECK(entries[3].dev_minor == 1);

    CHECK(entries[4].path == "[anon:arena 1]");
    CHECK_FALSE(entries[4].deleted);

    // Anonymous lines with and without the trailing space.
    CHECK(entries[5].path.empty());
    CHECK(entries[6].path.empty());
    CHECK_FALSE(entries[6].readable);
    CHECK_FALSE(entries[6].writable);
    CHECK_FALSE(entries[6].executable);

    CHECK(entries[7].path == "[stack]");
    CHECK(entries[7].end - entries[7].start == 0x21000);
}

TEST_CASE("parse_maps edge input", "[procfs]") {
    CHECK(parse_maps("").empty());
    CHECK(parse_maps("\n\n").size() == 0);

    // The last line may lack its newline.
    auto entries = parse_maps("1000-2000 rw-p 00000000 00:00 0 [heap]");
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].path == "[heap]");

    CHECK_THROWS_AS(parse_maps("1000-2000 rw-p"), Error);
    CHECK_THROWS_AS(parse_maps("10g0-2000 rw-p 00000000 00:00 0"), Error);
    CHECK_THROWS_AS(parse_maps("1000-2000 rw 00000000 00:00 0"), Error);
    CHECK_THROWS_AS(parse_maps("1000-2000 rw-p 00000000 0000 0"), Error);
    CHECK_THROWS_WITH(parse_maps("garbage"), Catch::Contains("\"garbage\""));
}

TEST_CASE("parse_process_memory real files", "[procfs]") {
    ProcessMemory memory =
        parse_process_memory(read_fixture("smaps_rollup_cat.txt"), read_fixture("status_cat.txt"));

    CHECK(memory.vss_bytes == 3060 * 1024);
    CHECK(memory.rss_bytes == 1704 * 1024);
    CHECK(memory.rss_anon_bytes == 112 * 1024);
    CHECK(memory.rss_file_bytes == 1580 * 1024);
    CHECK(memory.rss_shmem_bytes == 0);
    CHECK(memory.pss_bytes == 521 * 1024);
    CHECK(memory.uss_bytes == (68 + 112) * 1024);
    CHECK(memory.swap_bytes == 0);
}

TEST_CASE("parse_process_memory sums USS", "[procfs]") {
    std::string smaps_rollup =
        "00400000-7ffc0000 ---p 00000000 00:00 0    [rollup]\n"
        "Rss:                 900 kB\n"
        "Pss:                 500 kB\n"
        "Private_Clean:        10 kB\n"
        "Private_Dirty:        20 kB\n"
        "Private_Hugetlb:    2048 kB\n"
        "Swap:                 30 kB\n"
        "SwapPss:              15 kB\n";
    std::string status =
        "Name:\tworker\n"
        "VmSize:\t  123456 kB\n"
        "RssAnon:\t     400 kB\n"
        "RssFile:\t     300 kB\n"
        "RssShmem:\t    200 kB\n"
        "Threads:\t4\n";

    ProcessMemory memory = parse_process_memory(smaps_rollup, status);
    CHECK(memory.uss_bytes == (10 + 20 + 2048) * 1024);
    CHECK(memory.swap_bytes == 30 * 1024);
    CHECK(memory.rss_bytes == 900 * 1024);
    CHECK(memory.pss_bytes == 500 * 1024);
    CHECK(memory.vss_bytes == 123456ULL * 1024);
    CHECK(memory.rss_anon_bytes == 400 * 1024);
    CHECK(memory.rss_file_bytes == 300 * 1024);
    CHECK(memory.rss_shmem_bytes == 200 * 1024);
}

TEST_CASE("parse_process_memory missing fields", "[procfs]") {
    // A zombie's status has no Vm* or Rss* lines.
    ProcessMemory memory = parse_process_memory("", "Name:\tdefunct\nState:\tZ (zombie)\n");
    CHECK(memory.vss_bytes == 0);
    CHECK(memory.rss_bytes == 0);
    CHECK(memory.uss_bytes == 0);
}

TEST_CASE("read_maps live process", "[procfs]") {
    auto entries = read_maps(getpid());
    REQUIRE(entries);
    REQUIRE_FALSE(entries->empty());

    bool has_stack = false;
    for (const MapsEntry& entry : *entries) {
        CHECK(entry.start < entry.end);
        has_stack = has_stack || entry.path == "[stack]";
    }
    CHECK(has_stack);

    // The code of this function lies in a file mapping that is executable.
    auto code = reinterpret_cast<std::uint64_t>(&read_fixture);
    bool code_found = false;
    for (const MapsEntry& entry : *entries) {
        if (code >= entry.start && code < entry.end) {
            code_found = true;
            CHECK(entry.executable);
            CHECK(entry.is_file());
        }
    }
    CHECK(code_found);
}

TEST_CASE("read_process_memory live process", "[procfs]") {
    auto memory = read_process_memory(getpid());
    REQUIRE(memory);
    CHECK(memory->rss_bytes > 0);
    CHECK(memory->vss_bytes >= memory->rss_bytes);
    CHECK(memory->uss_bytes <= memory->rss_bytes);
    CHECK(memory->pss_bytes <= memory->rss_bytes);
    CHECK(memory->rss_anon_bytes > 0);
}

TEST_CASE("read functions missing process", "[procfs]") {
    CHECK_FALSE(read_maps(kMissingPid));
    CHECK_FALSE(read_process_memory(kMissingPid));
    CHECK_FALSE(read_comm(kMissingPid));
    CHECK_FALSE(read_cmdline(kMissingPid));
    CHECK_FALSE(read_process_file(kMissingPid, "status"));
    CHECK_FALSE(process_exists(kMissingPid));
    CHECK_FALSE(process_exists(0));
    CHECK_FALSE(process_exists(-1));
}

TEST_CASE("read_process_memory kernel thread", "[procfs]") {
    // kthreadd is pid 2 in the initial pid namespace. Elsewhere pid 2 may be a
    // user process, and the check does not apply.
    auto cmdline = read_cmdline(2);
    if (!cmdline || !cmdline->empty()) {
        WARN("pid 2 is not a kernel thread here");
        return;
    }
    CHECK_FALSE(read_process_memory(2));
}

TEST_CASE("read_comm and read_cmdline", "[procfs]") {
    auto comm = read_comm(getpid());
    REQUIRE(comm);
    CHECK_FALSE(comm->empty());
    CHECK(comm->find('\n') == std::string::npos);

    auto cmdline = read_cmdline(getpid());
    REQUIRE(cmdline);
    CHECK_FALSE(cmdline->empty());
    CHECK(cmdline->find('\0') == std::string::npos);
    CHECK(cmdline->back() != ' ');
}

TEST_CASE("read_cmdline joins arguments", "[procfs]") {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
        _exit(127);
    }

    // Wait until the exec has replaced the forked image.
    std::optional<std::string> cmdline;
    for (int attempt = 0; attempt < 200; ++attempt) {
        cmdline = read_cmdline(child);
        if (cmdline && *cmdline == "sleep 30")
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(cmdline == std::optional<std::string>("sleep 30"));
    CHECK(read_comm(child) == std::optional<std::string>("sleep"));
    CHECK(process_exists(child));

    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    CHECK_FALSE(process_exists(child));
}

TEST_CASE("process_exists zombie", "[procfs]") {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0)
        _exit(0);

    // Without waitpid the child stays a zombie after it exits.
    bool zombie = false;
    for (int attempt = 0; attempt < 200 && !zombie; ++attempt) {
        auto status = read_process_file(child, "status");
        zombie = status && status->find("State:\tZ") != std::string::npos;
        if (!zombie)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(zombie);
    CHECK_FALSE(process_exists(child));

    waitpid(child, nullptr, 0);
}

TEST_CASE("read_text_file missing file", "[procfs]") {
    CHECK_FALSE(read_text_file("/nonexistent/memobserve-test"));
    auto text = read_text_file(std::string(FIXTURES_DIR) + "/procfs/maps_crafted.txt");
    REQUIRE(text);
    CHECK(text->starts_with("00400000-00452000 r-xp"));
}

TEST_CASE("parse_smaps sums match smaps_rollup", "[procfs][smaps]") {
    // Both files were read from one sleeping process, one after the other.
    auto entries = parse_smaps(read_fixture("smaps_sleep.txt"));
    ProcessMemory rollup = parse_process_memory(read_fixture("smaps_rollup_sleep.txt"), "");
    REQUIRE(entries.size() == 37);

    std::uint64_t rss = 0;
    std::uint64_t pss = 0;
    std::uint64_t uss = 0;
    std::uint64_t size = 0;
    for (const SmapsEntry& entry : entries) {
        rss += entry.rss_bytes;
        pss += entry.pss_bytes;
        uss += entry.uss_bytes;
        size += entry.size_bytes;
        CHECK(entry.size_bytes == entry.maps.end - entry.maps.start);
    }
    CHECK(rss == rollup.rss_bytes);
    CHECK(rss == 1816 * 1024);
    CHECK(uss == rollup.uss_bytes);
    // Pss is rounded down to whole kB per mapping, so the sum may fall short.
    CHECK(pss <= rollup.pss_bytes);
    CHECK(pss + entries.size() * 1024 >= rollup.pss_bytes);
    CHECK(size > rss);

    CHECK(entries.front().maps.path == "/usr/bin/sleep");
    CHECK(entries.back().maps.path == "[vsyscall]");
}

TEST_CASE("parse_smaps crafted fields", "[procfs][smaps]") {
    auto entries = parse_smaps(read_fixture("smaps_crafted.txt"));
    REQUIRE(entries.size() == 16);

    const SmapsEntry& heap = entries[0];
    CHECK(heap.maps.path == "[heap]");
    CHECK(heap.size_bytes == 132 * 1024);
    CHECK(heap.rss_bytes == 120 * 1024);
    CHECK(heap.uss_bytes == 120 * 1024);
    CHECK(heap.kernel_page_bytes == 4096);
    CHECK_FALSE(heap.hugetlb);

    const SmapsEntry& transparent = entries[3];
    CHECK(transparent.anon_huge_bytes == 63488 * 1024);
    CHECK_FALSE(transparent.hugetlb);

    const SmapsEntry& hugetlb = entries[4];
    CHECK(hugetlb.hugetlb);
    CHECK(hugetlb.kernel_page_bytes == 2048 * 1024);
    CHECK(hugetlb.hugetlb_bytes == 4096 * 1024);
    CHECK(hugetlb.uss_bytes == 4096 * 1024);  // Private_Hugetlb counts in USS
    CHECK(hugetlb.rss_bytes == 0);             // and not in Rss
    CHECK(hugetlb.maps.path == "/anon_hugepage");
    CHECK(hugetlb.maps.deleted);

    const SmapsEntry& shared_zero = entries[5];
    CHECK(shared_zero.maps.shared);
    CHECK(shared_zero.pss_bytes == 512 * 1024);
    CHECK(shared_zero.uss_bytes == 0);

    CHECK(entries[8].swap_bytes == 64 * 1024);
    CHECK(entries[10].maps.path == "/srv/data/my data.bin");
    CHECK(entries[10].maps.deleted);
    CHECK(entries[14].maps.path == "[stack]");
    CHECK(entries[14].swap_bytes == 8 * 1024);
    CHECK(entries[15].maps.start == 0xffffffffff600000);
}

TEST_CASE("parse_smaps edge input", "[procfs][smaps]") {
    CHECK(parse_smaps("").empty());
    CHECK(parse_smaps("\n\n").empty());

    // A mapping with no field lines (as in /proc/PID/maps) has zero counters.
    auto bare = parse_smaps("00400000-00401000 r--p 00000000 00:00 0\n");
    REQUIRE(bare.size() == 1);
    CHECK(bare[0].rss_bytes == 0);

    // Unknown fields and fields without a kB unit are skipped.
    auto extra = parse_smaps("00400000-00401000 rw-p 00000000 00:00 0\n"
                             "Rss:        4 kB\n"
                             "ProtectionKey:         0\n"
                             "NewField:        8 kB\n");
    REQUIRE(extra.size() == 1);
    CHECK(extra[0].rss_bytes == 4096);

    CHECK_THROWS_WITH(parse_smaps("Rss:        4 kB\n"), Catch::Contains("field before the first mapping"));
    CHECK_THROWS_WITH(parse_smaps("00400000-00401000 rw-p 00000000 00:00 0\nnot a field\n"),
                      Catch::Contains("invalid line in an smaps file: \"not a field\""));
}

TEST_CASE("parse_syscall_stack_pointer", "[procfs][smaps]") {
    // In nanosleep: number, six arguments, stack pointer, program counter.
    CHECK(parse_syscall_stack_pointer("230 0x0 0x0 0x7fffd15fcd70 0x7fffd15fcdb0 0x0 0x0 "
                                      "0x7fffd15fcd58 0x7fa6e607a503\n") == 0x7fffd15fcd58);
    // Blocked outside a system call.
    CHECK(parse_syscall_stack_pointer("-1 0x7ffc648f4620 0x7f577a70b2ec\n") == 0x7ffc648f4620);
    CHECK_FALSE(parse_syscall_stack_pointer("running\n"));
    CHECK_FALSE(parse_syscall_stack_pointer(""));
    CHECK_FALSE(parse_syscall_stack_pointer("1 2 3\n"));
}

TEST_CASE("read_smaps live process", "[procfs][smaps]") {
    auto entries = read_smaps(static_cast<int>(getpid()));
    REQUIRE(entries);
    auto maps = read_maps(static_cast<int>(getpid()));
    REQUIRE(maps);
    CHECK(entries->size() >= maps->size() - 2);
    CHECK(entries->size() <= maps->size() + 2);
    bool has_stack = std::any_of(entries->begin(), entries->end(),
                                 [](const SmapsEntry& entry) { return entry.maps.path == "[stack]"; });
    CHECK(has_stack);
    CHECK_FALSE(read_smaps(kMissingPid));
}

TEST_CASE("read_thread_stack_pointers waiting thread", "[procfs][smaps]") {
    // A thread blocked in a system call shows its stack pointer, inside the
    // stack memory that this test gave it.
    constexpr std::size_t kStackBytes = 256 * 1024;
    std::vector<char> stack(kStackBytes);
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    {
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setstack(&attributes, stack.data(), stack.size());
        pthread_t thread;
        auto wait_for_byte = [](void* fd) -> void* {
            char byte;
            (void)!read(*static_cast<int*>(fd), &byte, 1);
            return nullptr;
        };
        REQUIRE(pthread_create(&thread, &attributes, wait_for_byte, &pipe_fds[0]) == 0);
        pthread_attr_destroy(&attributes);

        auto stack_start = reinterpret_cast<std::uint64_t>(stack.data());
        bool found = false;
        for (int attempt = 0; attempt < 200 && !found; ++attempt) {
            for (std::uint64_t stack_pointer : read_thread_stack_pointers(static_cast<int>(getpid())))
                found = found || (stack_pointer >= stack_start && stack_pointer < stack_start + kStackBytes);
            if (!found)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        CHECK(found);
        REQUIRE(write(pipe_fds[1], "x", 1) == 1);
        pthread_join(thread, nullptr);
    }
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    CHECK(read_thread_stack_pointers(kMissingPid).empty());
}
