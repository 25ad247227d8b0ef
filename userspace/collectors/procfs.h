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
