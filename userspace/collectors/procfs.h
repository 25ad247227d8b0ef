// Readers of /proc/PID files. Each parse_* function takes the file's text so
// that unit tests can feed fixtures; each read_* function reads the live file.
// The read_* functions throw Error for malformed text and for failures other
// than a missing process.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/snapshot.h"

namespace memobserve {

// One line of /proc/PID/maps.
struct MapsEntry {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    bool readable = false;
    bool writable = false;
    bool executable = false;
    bool shared = false;
    std::uint64_t offset = 0;
    unsigned dev_major = 0;
    unsigned dev_minor = 0;
    std::uint64_t inode = 0;
    std::string path;  // empty for anonymous mappings; "[heap]", "[stack]"...; " (deleted)" removed
    bool deleted = false;

    bool is_file() const { return inode != 0; }
};

std::vector<MapsEntry> parse_maps(std::string_view text);
// Empty optional when the process does not exist (any more).
std::optional<std::vector<MapsEntry>> read_maps(int pid);

// One mapping of /proc/PID/smaps: its maps line and the counters below it, in
// bytes. Counters missing from the text are 0.
struct SmapsEntry {
    MapsEntry maps;
    std::uint64_t size_bytes = 0;
    std::uint64_t rss_bytes = 0;
    std::uint64_t pss_bytes = 0;
    std::uint64_t uss_bytes = 0;  // Private_Clean + Private_Dirty + Private_Hugetlb
    std::uint64_t swap_bytes = 0;
    std::uint64_t anon_huge_bytes = 0;  // AnonHugePages: transparent huge pages
    std::uint64_t hugetlb_bytes = 0;    // Shared_Hugetlb + Private_Hugetlb
    std::uint64_t kernel_page_bytes = 0;  // KernelPageSize: above the base page size for hugetlbfs
    bool hugetlb = false;  // "ht" in VmFlags: a hugetlbfs mapping
};

// Throws Error naming the line when a line is neither a maps line nor a
// "Name: value" field, or when a field comes before the first maps line.
std::vector<SmapsEntry> parse_smaps(std::string_view text);
// Empty optional when the process does not exist (any more).
std::optional<std::vector<SmapsEntry>> read_smaps(int pid);

// The user stack pointer of a thread from /proc/PID/task/TID/syscall: the
// second-last value, present both in a system call ("NR args... SP PC") and
// when blocked outside one ("-1 SP PC"). Empty for "running", because the
// kernel does not show the registers of a thread on a CPU.
std::optional<std::uint64_t> parse_syscall_stack_pointer(std::string_view syscall);
// The stack pointers of the threads of `pid` that are not running now.
std::vector<std::uint64_t> read_thread_stack_pointers(int pid);

// Takes VSS and the RSS split (anon, file, shmem) from status, and RSS, PSS,
// USS and swap from smaps_rollup. USS is Private_Clean + Private_Dirty +
// Private_Hugetlb. Fields missing from the text are 0.
ProcessMemory parse_process_memory(std::string_view smaps_rollup, std::string_view status);
// Empty optional when the process does not exist (any more), and for kernel
// threads, whose smaps_rollup fails with ESRCH because they have no user memory.
std::optional<ProcessMemory> read_process_memory(int pid);

std::optional<std::string> read_comm(int pid);
// The pid in the process's innermost pid namespace: the last NSpid value of
// /proc/PID/status. 0 when the field is missing.
int parse_nspid(std::string_view status);
std::optional<int> read_nspid(int pid);
// Every process on the host but kernel threads, sorted.
std::vector<int> list_processes();
// NUL separators replaced by spaces, trailing separators removed. Empty for
// kernel threads.
std::optional<std::string> read_cmdline(int pid);

// False for zombies too, because they have released their memory already.
bool process_exists(int pid);

// Read a whole file; empty optional when it cannot be opened or read.
std::optional<std::string> read_text_file(const std::string& path);

// Reads /proc/PID/NAME. Returns an empty optional when the process does not
// exist (any more). Throws Error when the file cannot be read for another
// reason, such as EACCES for a process of another user.
std::optional<std::string> read_process_file(int pid, std::string_view name);

}  // namespace memobserve
