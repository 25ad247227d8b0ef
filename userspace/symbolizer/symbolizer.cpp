#include "symbolizer/symbolizer.h"

#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

#include "util/error.h"
#include "util/log.h"

namespace memobserve {

struct Symbolizer::Process {
    int pid = 0;
    Dwfl* dwfl = nullptr;  // null when the mappings could not be read

    ~Process() {
        if (dwfl != nullptr)
            dwfl_end(dwfl);
    }
};

namespace {

constexpr std::string_view kUnknownModule = "[unknown]";
constexpr std::string_view kDeletedSuffix = " (deleted)";

// Opens the file that /proc/PID/map_files shows for the mapping starting at
// `start`, which still reaches a file that was deleted or replaced after the
// process mapped it. Needs CAP_SYS_ADMIN.
int open_mapped_file(int pid, Dwarf_Addr start, std::string& path) {
    const auto directory = fmt::format("/proc/{}/map_files", pid);
    const auto prefix = fmt::format("{:x}-", start);
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
        const auto name = entry.path().filename().string();
        if (!name.starts_with(prefix))
            continue;
        path = entry.path().string();
        return open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    return -1;
}

// Opens `module_name` in the mount namespace of process `pid`, through
// /proc/PID/root, so that a process in a container gets its own files.
int open_module_file(int pid, std::string_view module_name, Dwarf_Addr start, std::string& path) {
    if (module_name.ends_with(kDeletedSuffix))
        return open_mapped_file(pid, start, path);
    path = fmt::format("/proc/{}/root{}", pid, module_name);
    return open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

// find_elf callback. libdwfl 0.188 opens the paths of /proc/PID/maps in our own
// mount namespace, which gives wrong files for a process in a container, so
// file modules are opened here and only the vDSO goes to libdwfl.
int find_module_elf(Dwfl_Module* module, void** userdata, const char* module_name,
                    Dwarf_Addr start, char** file_name, Elf** elf) {
    const auto* pid = static_cast<const int*>(*userdata);
    if (module_name[0] != '/')
        return dwfl_linux_proc_find_elf(module, userdata, module_name, start, file_name, elf);
    if (pid == nullptr)
        return -1;

    std::string path;
    const int fd = open_module_file(*pid, module_name, start, path);
    if (fd >= 0)
        *file_name = strdup(path.c_str());
    return fd;
}

char* debuginfo_path = nullptr;  // libdwfl's default search path

const Dwfl_Callbacks kCallbacks = {
    .find_elf = find_module_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = &debuginfo_path,
};

// dwfl_getmodules callback: gives each module the pid for find_module_elf and
// opens its ELF and debug information now, while /proc/PID/root still exists.
int open_module(Dwfl_Module* module, void** userdata, const char*, Dwarf_Addr, void* pid) {
    *userdata = pid;
    Dwarf_Addr bias = 0;
    dwfl_module_getelf(module, &bias);
    dwfl_module_getdwarf(module, &bias);
    return DWARF_CB_OK;
}

std::string demangle(const char* name) {
    if (std::strncmp(name, "_Z", 2) != 0)
        return name;
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> demangled(
        abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
    return status == 0 && demangled ? demangled.get() : name;
}

std::string module_name(Dwfl_Module* module) {
    const char* name = dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr,
                                        nullptr, nullptr);
    if (name == nullptr)
        return std::string(kUnknownModule);
    // libdwfl names the vDSO "[vdso: PID]", and /proc/PID/maps calls it "[vdso]".
    if (std::string_view(name).starts_with("[vdso"))
        return "[vdso]";
    return name;
}

// Whether a PT_LOAD segment of the module's file contains `address`. libdwfl
// takes an anonymous mapping right after a module's last mapping as part of the
// module, because that is where .bss usually lies, but it can be any mmap().
// Without the file, this trusts the mappings and returns true.
bool segment_contains(Dwfl_Module* module, std::uint64_t address) {
    Dwarf_Addr bias = 0;
    Elf* elf = dwfl_module_getelf(module, &bias);
    std::size_t count = 0;
    if (elf == nullptr || elf_getphdrnum(elf, &count) != 0)
        return true;
    for (std::size_t i = 0; i < count; ++i) {
        GElf_Phdr header;
        if (gelf_getphdr(elf, static_cast<int>(i), &header) == nullptr || header.p_type != PT_LOAD)
            continue;
        const std::uint64_t start = bias + header.p_vaddr;
        if (address >= start && address - start < header.p_memsz)
            return true;
    }
    return false;
}

// The address as the module's ELF file numbers it, which is what
// `addr2line -e MODULE` takes, or the distance from the module start when the
// file could not be opened.
std::uint64_t module_offset(Dwfl_Module* module, std::uint64_t address) {
    Dwarf_Addr relative = address;
    if (dwfl_module_relocate_address(module, &relative) >= 0)
        return relative;
    Dwarf_Addr start = 0;
    dwfl_module_info(module, nullptr, &start, nullptr, nullptr, nullptr, nullptr, nullptr);
    return address - start;
}

// Sets the symbol that contains `lookup`. A symbol without a size is not taken,
// because nothing shows where it ends.
bool add_symbol(Dwfl_Module* module, std::uint64_t lookup, Frame& frame) {
    GElf_Off offset = 0;
    GElf_Sym symbol{};
    const char* name = dwfl_module_addrinfo(module, lookup, &offset, &symbol, nullptr, nullptr,
                                            nullptr);
    if (name == nullptr || symbol.st_size == 0 || offset >= symbol.st_size)
        return false;
    const std::uint64_t symbol_start = lookup - offset;
    frame.symbol = demangle(name);
    frame.offset = frame.address - symbol_start;
    return true;
}

void add_source_line(Dwfl_Module* module, std::uint64_t lookup, Frame& frame) {
    Dwfl_Line* line = dwfl_module_getsrc(module, lookup);
    if (line == nullptr)
        return;
    int line_number = 0;
    const char* file = dwfl_lineinfo(line, nullptr, &line_number, nullptr, nullptr, nullptr);
    if (file == nullptr || line_number <= 0)
        return;
    frame.file = file;
    frame.line = line_number;
}

Frame resolve(Dwfl* dwfl, std::uint64_t address, bool return_address) {
    Frame frame;
    frame.address = address;

    // A return address points after the call, which may already be the next
    // function or the next line, so the call instruction itself is looked up.
    const std::uint64_t lookup = return_address && address > 0 ? address - 1 : address;
    Dwfl_Module* module = dwfl != nullptr ? dwfl_addrmodule(dwfl, lookup) : nullptr;
    if (module == nullptr || !segment_contains(module, lookup)) {
        frame.module = kUnknownModule;
        frame.offset = address;
        return frame;
    }

    frame.module = module_name(module);
    if (!add_symbol(module, lookup, frame))
        frame.offset = module_offset(module, address);
    add_source_line(module, lookup, frame);
    return frame;
}

}  // namespace

std::unique_ptr<Symbolizer::Process> Symbolizer::read_process(int pid) {
    auto process = std::make_unique<Process>();
    process->pid = pid;

    Dwfl* dwfl = dwfl_begin(&kCallbacks);
    if (dwfl == nullptr) {
        log::warning("failed to start libdwfl for process {}: {}", pid, dwfl_errmsg(-1));
        return process;
    }
    const int result = dwfl_linux_proc_report(dwfl, pid);
    if (result != 0) {
        // A positive result is an errno value, such as ENOENT for a process that exited.
        const std::string reason = result > 0 ? describe_errno(result) : dwfl_errmsg(-1);
        log::debug("failed to read the mappings of process {}: {}", pid, reason);
        dwfl_end(dwfl);
        return process;
    }
    if (dwfl_report_end(dwfl, nullptr, nullptr) != 0) {
        log::debug("failed to read the mappings of process {}: {}", pid, dwfl_errmsg(-1));
        dwfl_end(dwfl);
        return process;
    }

    // NOTE: every module keeps its file open, so many cached processes can
    // reach the RLIMIT_NOFILE soft limit. forget() closes them.
    dwfl_getmodules(dwfl, open_module, &process->pid, 0);
    process->dwfl = dwfl;
    return process;
}

Symbolizer::Symbolizer() = default;
Symbolizer::~Symbolizer() = default;

std::vector<Frame> Symbolizer::symbolize(int pid, const std::vector<std::uint64_t>& addresses) {
    Dwfl* dwfl = process(pid).dwfl;
    std::vector<Frame> frames;
    frames.reserve(addresses.size());
    for (std::size_t i = 0; i < addresses.size(); ++i)
        frames.push_back(resolve(dwfl, addresses[i], i > 0));
    return frames;
}

void Symbolizer::refresh(int pid) {
    auto fresh = read_process(pid);
    auto& cached = processes_[pid];
    if (fresh->dwfl != nullptr || cached == nullptr)
        cached = std::move(fresh);
}

void Symbolizer::forget(int pid) {
    processes_.erase(pid);
}

Symbolizer::Process& Symbolizer::process(int pid) {
    auto& cached = processes_[pid];
    if (cached == nullptr)
        cached = read_process(pid);
    return *cached;
}

}  // namespace memobserve
