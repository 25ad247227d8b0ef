// Turns user addresses of traced processes into frames: function (C++
// demangled), module, offset and source line, through elfutils (libdwfl).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/snapshot.h"

namespace memobserve {

class Symbolizer {
public:
    Symbolizer();
    ~Symbolizer();
    Symbolizer(const Symbolizer&) = delete;
    Symbolizer& operator=(const Symbolizer&) = delete;

    // Frames for `addresses` of process `pid`, innermost first. Reads the
    // process's mappings on first use and keeps them, so that a process that
    // has exited since still resolves; forget(pid) drops them. An address
    // without a symbol gives module and module offset. An address outside every
    // mapped file (anonymous memory such as JIT code) gives module "[unknown]",
    // and so does every address of a process whose mappings could not be read,
    // until refresh(pid).
    //
    // Every address after the first is taken as a return address, which
    // points after its call instruction, so its symbol, module and line are
    // those of address - 1. Frame::address stays the given address and
    // Frame::offset is counted from it.
    //
    // Without a symbol, Frame::offset is the address as the module's ELF file
    // numbers it (the input of `addr2line -e MODULE`). A symbol is reported
    // only when its [start, start + size) contains the address.
    std::vector<Frame> symbolize(int pid, const std::vector<std::uint64_t>& addresses);

    // Read the mappings of `pid` again (after exec or dlopen). Keeps the
    // mappings read before when the process has exited.
    void refresh(int pid);
    // The process has run exec: its old mappings are gone.
    void clear(int pid);
    // A code mapping the BPF side reported, for a process that may be gone
    // before its /proc files are read. Opens the file now if it is new.
    void add_mapping(int pid, std::uint64_t start, std::uint64_t end, std::uint64_t file_offset,
                     std::uint64_t device, std::uint64_t inode);
    void forget(int pid);

    // ELF files read so far; files with the same build id count once.
    std::size_t open_elf_files() const;

private:
    using FileKey = std::pair<std::uint64_t, std::uint64_t>;  // device, inode
    struct Mapping;
    struct Process;
    struct Symbols;
    struct File;
    std::unique_ptr<Process> read_process(int pid);
    Process& process(int pid);
    // The ELF file of `mapping`, opened through process `pid` on first use;
    // null when it cannot be read.
    File* file(int pid, const Mapping& mapping);
    Frame resolve(int pid, const Process& process, std::uint64_t address, bool return_address);

    std::map<int, std::unique_ptr<Process>> processes_;
    // Files by device and inode, shared by the processes that map them: one
    // open descriptor per file however many processes come and go.
    std::map<FileKey, std::unique_ptr<File>> files_;
    // Symbols by build id (its raw bytes), while a file still uses them.
    std::map<std::string, std::weak_ptr<Symbols>> by_build_id_;
};

}  // namespace memobserve
