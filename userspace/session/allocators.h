// Finding the allocators a process uses: the files it maps that define the
// malloc family or C++ operator new, and allocators memobserve cannot probe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "collectors/procfs.h"

namespace memobserve {

// An allocator entry point found in a file: symbol name and the file offset
// its probes are attached at. That is the function's first instruction, or
// the first one that the kernel emulates when only instructions that leave
// the arguments and the stack pointer alone come before it (see
// probe_placement.h).
struct AllocatorFunction {
    std::string name;
    std::uint64_t file_offset = 0;
};

// Allocator entry points of one mapped file.
struct AllocatorFile {
    std::string path;       // as the process maps it
    std::string open_path;  // where memobserve can open it: /proc/PID/root/<path>
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::vector<AllocatorFunction> functions;  // malloc family and operator new
    std::uint64_t start_main_offset = 0;       // __libc_start_main, 0 if absent
    std::string unprobed_allocator;  // "jemalloc", "tcmalloc", "mimalloc" when
                                     // the file has one under other names
};

// Symbols of the malloc family that memobserve probes, in the order of the BPF
// entry programs.
const std::vector<std::string>& malloc_family_symbols();

// Mangled names of operator new and new[] (plain, nothrow, aligned).
const std::vector<std::string>& operator_new_symbols();

// Read the ELF file at `open_path` and list its allocator functions. Returns an
// empty optional when it is not a readable ELF file.
std::optional<AllocatorFile> inspect_allocator_file(const std::string& open_path);

// Files mapped executable by `pid`, one entry per (device, inode), with the
// path to open them through /proc/PID/root.
struct MappedFile {
    std::string path;
    std::string open_path;
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
};
std::vector<MappedFile> executable_files(int pid, const std::vector<MapsEntry>& maps);

}  // namespace memobserve
