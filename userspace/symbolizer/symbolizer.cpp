#include "symbolizer/symbolizer.h"

#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "collectors/procfs.h"
#include "util/error.h"
#include "util/log.h"

namespace memobserve {

// One mapping of a process, as /proc/PID/maps shows it.
struct Symbolizer::Mapping {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    std::uint64_t offset = 0;  // in the file
    FileKey file{0, 0};        // device, inode; inode 0 for anonymous memory
    std::string name;          // path, " (deleted)" kept; "[vdso]" and the like
};

struct Symbolizer::Process {
    std::vector<Mapping> mappings;  // sorted by start
    bool read = false;              // false when the mappings could not be read
};

// The symbols of an ELF file, reported to libdwfl at its own addresses (bias
// 0). Files with the same build id share one: the same library copied into
// several container images is read once.
struct Symbolizer::Symbols {
    Dwfl* dwfl = nullptr;
    Dwfl_Module* module = nullptr;
    std::vector<GElf_Phdr> loads;  // PT_LOAD segments
    // Lookups done before, by ELF address: libdwfl searches the symbol
    // table linearly, and the same return addresses recur in many stacks.
    struct Lookup {
        std::string symbol;  // demangled; empty without a symbol
        std::uint64_t symbol_offset = 0;
        std::string source;
        int line = 0;
    };
    std::unordered_map<std::uint64_t, Lookup> lookups;
    // Every function symbol with a size, sorted by start address, so that a
    // new address (a fault anywhere in memset, say) is a binary search.
    // libdwfl's own lookup reads the whole symbol table for each address.
    struct Function {
        std::uint64_t start = 0;
        std::uint64_t end = 0;
        const char* name = nullptr;  // in libdwfl's string table, which lives as long as dwfl
        std::uint64_t ends_by = 0;   // the largest end of this and every earlier function
    };
    std::vector<Function> functions;

    ~Symbols() {
        if (dwfl != nullptr)
            dwfl_end(dwfl);
    }
};

// A mapped file, by device and inode, shared by every process that maps it.
struct Symbolizer::File {
    std::string name;                  // path as the first process that mapped it shows it
    std::shared_ptr<Symbols> symbols;  // null when the file could not be read
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
// /proc/PID/root, so that a process in a container gets its own files. A
// chrooted process shows paths from memobserve's root in its maps, which
// /proc/PID/root does not reach: map_files does.
int open_module_file(int pid, std::string_view module_name, Dwarf_Addr start, std::string& path) {
    if (module_name.ends_with(kDeletedSuffix))
        return open_mapped_file(pid, start, path);
    path = fmt::format("/proc/{}/root{}", pid, module_name);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? fd : open_mapped_file(pid, start, path);
}

char* debuginfo_path = nullptr;  // libdwfl's default search path

// Files are opened here and given to libdwfl, which only looks for separate
// debug information (by build id, then by debuglink).
const Dwfl_Callbacks kCallbacks = {
    .find_elf = nullptr,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = &debuginfo_path,
};

std::string demangle(const char* name) {
    if (std::strncmp(name, "_Z", 2) != 0)
        return name;
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> demangled(
        abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
    return status == 0 && demangled ? demangled.get() : name;
}

}  // namespace

Symbolizer::Symbolizer() = default;
Symbolizer::~Symbolizer() = default;

std::unique_ptr<Symbolizer::Process> Symbolizer::read_process(int pid) {
    auto process = std::make_unique<Process>();
    std::optional<std::vector<MapsEntry>> maps;
    try {
        maps = read_maps(pid);
    } catch (const Error& error) {
        log::debug("failed to read the mappings of process {}: {}", pid, error.what());
    }
    if (!maps)
        return process;
    process->read = true;
    for (const auto& entry : *maps) {
        Mapping mapping;
        mapping.start = entry.start;
        mapping.end = entry.end;
        mapping.offset = entry.offset;
        mapping.name = entry.deleted ? entry.path + std::string(kDeletedSuffix) : entry.path;
        if (entry.is_file())
            mapping.file = {makedev(entry.dev_major, entry.dev_minor), entry.inode};
        // Code is read now, while the process and its root still exist.
        if (entry.is_file() && entry.executable)
            file(pid, mapping);
        process->mappings.push_back(std::move(mapping));
    }
    return process;
}

Symbolizer::File* Symbolizer::file(int pid, const Mapping& mapping) {
    auto& cached = files_[mapping.file];
    if (cached != nullptr)
        return cached->symbols != nullptr ? cached.get() : nullptr;
    cached = std::make_unique<File>();
    cached->name = mapping.name;

    std::string path;
    int fd = open_module_file(pid, mapping.name, mapping.start, path);
    if (fd < 0)
        return nullptr;
    struct stat status;
    if (fstat(fd, &status) != 0 || status.st_ino != mapping.file.second) {
        close(fd);
        fd = open_mapped_file(pid, mapping.start, path);
        if (fd < 0)
            return nullptr;
    }
    auto symbols = std::make_shared<Symbols>();
    symbols->dwfl = dwfl_begin(&kCallbacks);
    if (symbols->dwfl == nullptr) {
        close(fd);
        return nullptr;
    }
    // libdwfl keeps the descriptor and closes it with the Dwfl.
    symbols->module = dwfl_report_elf(symbols->dwfl, mapping.name.c_str(), path.c_str(), fd, 0, false);
    dwfl_report_end(symbols->dwfl, nullptr, nullptr);
    if (symbols->module == nullptr) {
        log::debug("failed to read {}: {}", path, dwfl_errmsg(-1));
        return nullptr;
    }

    const unsigned char* build_id = nullptr;
    GElf_Addr build_id_address = 0;
    int build_id_size = dwfl_module_build_id(symbols->module, &build_id, &build_id_address);
    std::string build_id_key;
    if (build_id_size > 0)
        build_id_key.assign(reinterpret_cast<const char*>(build_id), static_cast<std::size_t>(build_id_size));
    if (!build_id_key.empty()) {
        if (auto known = by_build_id_[build_id_key].lock()) {
            cached->symbols = std::move(known);
            return cached.get();
        }
    }

    Dwarf_Addr bias = 0;
    Elf* elf = dwfl_module_getelf(symbols->module, &bias);
    std::size_t count = 0;
    if (elf != nullptr && elf_getphdrnum(elf, &count) == 0) {
        for (std::size_t i = 0; i < count; ++i) {
            GElf_Phdr header;
            if (gelf_getphdr(elf, static_cast<int>(i), &header) != nullptr && header.p_type == PT_LOAD)
                symbols->loads.push_back(header);
        }
    }
    Dwarf_Addr dwarf_bias = 0;
    dwfl_module_getdwarf(symbols->module, &dwarf_bias);
    // The symbol table, debug file's included, once per file. At one start
    // address a global symbol comes before a local one, as libdwfl prefers.
    int symbol_count = dwfl_module_getsymtab(symbols->module);
    std::vector<std::pair<Symbols::Function, bool>> found;
    for (int i = 1; i < symbol_count; ++i) {
        GElf_Sym symbol;
        GElf_Addr start = 0;
        const char* name = dwfl_module_getsym_info(symbols->module, i, &symbol, &start, nullptr,
                                                   nullptr, nullptr);
        int type = GELF_ST_TYPE(symbol.st_info);
        if (name == nullptr || *name == '\0' || symbol.st_size == 0 ||
            (type != STT_FUNC && type != STT_GNU_IFUNC))
            continue;
        found.push_back({{start, start + symbol.st_size, name, 0},
                         GELF_ST_BIND(symbol.st_info) != STB_LOCAL});
    }
    std::stable_sort(found.begin(), found.end(), [](const auto& left, const auto& right) {
        if (left.first.start != right.first.start)
            return left.first.start < right.first.start;
        return left.second && !right.second;
    });
    std::uint64_t ends_by = 0;
    for (auto& [function, global] : found) {
        // One entry per start address: the first, global if there is one.
        if (!symbols->functions.empty() && symbols->functions.back().start == function.start)
            continue;
        ends_by = std::max(ends_by, function.end);
        function.ends_by = ends_by;
        symbols->functions.push_back(function);
    }
    if (!build_id_key.empty())
        by_build_id_[build_id_key] = symbols;
    cached->symbols = std::move(symbols);
    return cached.get();
}

std::size_t Symbolizer::open_elf_files() const {
    std::set<const Symbols*> distinct;
    for (const auto& [key, file] : files_) {
        if (file != nullptr && file->symbols != nullptr)
            distinct.insert(file->symbols.get());
    }
    return distinct.size();
}

Frame Symbolizer::resolve(int pid, const Process& process, std::uint64_t address, bool return_address) {
    Frame frame;
    frame.address = address;
    frame.module = kUnknownModule;
    frame.offset = address;

    // A return address points after the call, which may already be the next
    // function or the next line, so the call instruction itself is looked up.
    const std::uint64_t lookup = return_address && address > 0 ? address - 1 : address;
    auto after = std::upper_bound(process.mappings.begin(), process.mappings.end(), lookup,
                                  [](std::uint64_t value, const Mapping& mapping) { return value < mapping.start; });
    if (after == process.mappings.begin())
        return frame;
    const Mapping& mapping = *std::prev(after);
    if (lookup >= mapping.end)
        return frame;
    if (mapping.file.second == 0) {
        // The vDSO has no file to read; other anonymous memory (JIT code) no name.
        if (mapping.name == "[vdso]") {
            frame.module = mapping.name;
            frame.offset = address - mapping.start;
        }
        return frame;
    }

    frame.module = mapping.name;
    frame.offset = address - mapping.start + mapping.offset;
    File* mapped_file = file(pid, mapping);
    if (mapped_file == nullptr)
        return frame;
    if (frame.module.empty())
        frame.module = mapped_file->name;
    Symbols* elf = mapped_file->symbols.get();

    // The address as the ELF file numbers it: through the segment that holds
    // its file offset.
    const std::uint64_t file_offset = lookup - mapping.start + mapping.offset;
    auto segment = std::find_if(elf->loads.begin(), elf->loads.end(), [&](const GElf_Phdr& load) {
        return file_offset >= load.p_offset && file_offset - load.p_offset < load.p_filesz;
    });
    if (segment == elf->loads.end())
        return frame;
    const std::uint64_t elf_lookup = file_offset - segment->p_offset + segment->p_vaddr;
    frame.offset = elf_lookup + (address - lookup);

    auto [cached, added] = elf->lookups.try_emplace(elf_lookup);
    Symbols::Lookup& result = cached->second;
    if (added) {
        auto after = std::upper_bound(
            elf->functions.begin(), elf->functions.end(), elf_lookup,
            [](std::uint64_t address, const Symbols::Function& function) { return address < function.start; });
        const Symbols::Function* before = after == elf->functions.begin() ? nullptr : &*std::prev(after);
        if (before != nullptr && elf_lookup < before->end) {
            result.symbol = demangle(before->name);
            result.symbol_offset = elf_lookup - before->start;
        } else if (before != nullptr && elf_lookup < before->ends_by) {
            // Inside a function that encloses a smaller one: rare, and
            // libdwfl decides.
            GElf_Off symbol_offset = 0;
            GElf_Sym symbol{};
            const char* name = dwfl_module_addrinfo(elf->module, elf_lookup, &symbol_offset,
                                                    &symbol, nullptr, nullptr, nullptr);
            // A symbol without a size is not taken: nothing shows where it ends.
            if (name != nullptr && symbol.st_size != 0 && symbol_offset < symbol.st_size) {
                result.symbol = demangle(name);
                result.symbol_offset = symbol_offset;
            }
        }
        if (Dwfl_Line* line = dwfl_module_getsrc(elf->module, elf_lookup)) {
            int line_number = 0;
            const char* source = dwfl_lineinfo(line, nullptr, &line_number, nullptr, nullptr, nullptr);
            if (source != nullptr && line_number > 0) {
                result.source = source;
                result.line = line_number;
            }
        }
    }
    if (!result.symbol.empty()) {
        frame.symbol = result.symbol;
        frame.offset = result.symbol_offset + (address - lookup);
    }
    frame.file = result.source;
    frame.line = result.line;
    return frame;
}

std::vector<Frame> Symbolizer::symbolize(int pid, const std::vector<std::uint64_t>& addresses) {
    const Process& mapped = process(pid);
    std::vector<Frame> frames;
    frames.reserve(addresses.size());
    for (std::size_t i = 0; i < addresses.size(); ++i)
        frames.push_back(resolve(pid, mapped, addresses[i], i > 0));
    return frames;
}

void Symbolizer::refresh(int pid) {
    auto fresh = read_process(pid);
    auto& cached = processes_[pid];
    if (fresh->read || cached == nullptr)
        cached = std::move(fresh);
}

void Symbolizer::clear(int pid) {
    auto& cached = processes_[pid];
    cached = std::make_unique<Process>();
    cached->read = true;
}

void Symbolizer::add_mapping(int pid, std::uint64_t start, std::uint64_t end, std::uint64_t file_offset,
                             std::uint64_t device, std::uint64_t inode) {
    auto& cached = processes_[pid];
    if (cached == nullptr) {
        cached = std::make_unique<Process>();
        cached->read = true;
    }
    auto& mappings = cached->mappings;
    std::erase_if(mappings, [&](const Mapping& mapping) { return mapping.start < end && start < mapping.end; });

    Mapping mapping;
    mapping.start = start;
    mapping.end = end;
    mapping.offset = file_offset;
    mapping.file = {device, inode};
    auto known = files_.find(mapping.file);
    if (known != files_.end() && known->second != nullptr) {
        mapping.name = known->second->name;
    } else {
        // The path the process sees, through the link map_files holds.
        std::error_code error;
        auto target = std::filesystem::read_symlink(
            fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, start, end), error);
        mapping.name = error ? std::string() : target.string();
        file(pid, mapping);
    }
    auto after = std::upper_bound(mappings.begin(), mappings.end(), start,
                                  [](std::uint64_t value, const Mapping& other) { return value < other.start; });
    mappings.insert(after, std::move(mapping));
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
