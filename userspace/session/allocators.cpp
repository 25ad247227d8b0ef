#include "session/allocators.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <set>

#include <fmt/format.h>

#include "session/probe_placement.h"

namespace memobserve {

namespace {

// Symbols that mark a bundled allocator under its own names. A file that
// defines them but not malloc is reported as not probed.
const std::vector<std::pair<std::string, std::string>> kOtherAllocators = {
    {"je_malloc", "jemalloc"}, {"mallocx", "jemalloc"},   {"je_mallocx", "jemalloc"},
    {"tc_malloc", "tcmalloc"}, {"mi_malloc", "mimalloc"},
};

class ElfFile {
public:
    explicit ElfFile(const std::string& path) {
        fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0)
            return;
        elf_ = elf_begin(fd_, ELF_C_READ_MMAP, nullptr);
    }
    ~ElfFile() {
        if (elf_)
            elf_end(elf_);
        if (fd_ >= 0)
            close(fd_);
    }
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;

    Elf* get() const { return elf_ && elf_kind(elf_) == ELF_K_ELF ? elf_ : nullptr; }

private:
    int fd_ = -1;
    Elf* elf_ = nullptr;
};

// Convert a symbol's virtual address to the file offset a uprobe needs, through
// the PT_LOAD segment that contains it.
std::optional<std::uint64_t> file_offset_of(Elf* elf, std::uint64_t address) {
    std::size_t count = 0;
    if (elf_getphdrnum(elf, &count) != 0)
        return std::nullopt;
    for (std::size_t i = 0; i < count; ++i) {
        GElf_Phdr header;
        if (!gelf_getphdr(elf, static_cast<int>(i), &header) || header.p_type != PT_LOAD)
            continue;
        if (address >= header.p_vaddr && address < header.p_vaddr + header.p_filesz)
            return address - header.p_vaddr + header.p_offset;
    }
    return std::nullopt;
}

// Defined functions of the symbol table `section`, by name.
void collect_functions(Elf* elf, Elf_Scn* section, std::map<std::string, std::uint64_t>& functions) {
    GElf_Shdr header;
    if (!gelf_getshdr(section, &header) || header.sh_entsize == 0)
        return;
    Elf_Data* data = elf_getdata(section, nullptr);
    if (!data)
        return;
    std::size_t count = header.sh_size / header.sh_entsize;
    for (std::size_t i = 0; i < count; ++i) {
        GElf_Sym symbol;
        if (!gelf_getsym(data, static_cast<int>(i), &symbol))
            continue;
        if (GELF_ST_TYPE(symbol.st_info) != STT_FUNC && GELF_ST_TYPE(symbol.st_info) != STT_GNU_IFUNC)
            continue;
        if (symbol.st_shndx == SHN_UNDEF || symbol.st_value == 0)
            continue;
        if (GELF_ST_BIND(symbol.st_info) == STB_LOCAL)
            continue;
        const char* name = elf_strptr(elf, header.sh_link, symbol.st_name);
        if (name && *name)
            functions.emplace(name, symbol.st_value);
    }
}

// Offset, from `function_offset`, of the first instruction that the kernel
// single-steps instead of emulating: past endbr64 and register pushes (x86-64).
std::uint64_t stepped_instruction_offset(const std::string& path, std::uint64_t function_offset) {
    unsigned char code[32] = {};
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t count = pread(fd, code, sizeof(code), static_cast<off_t>(function_offset));
    close(fd);

    std::size_t position = 0;
    while (count > 0 && position + 4 <= static_cast<std::size_t>(count)) {
        const unsigned char* at = code + position;
        if (at[0] == 0xf3 && at[1] == 0x0f && at[2] == 0x1e && at[3] == 0xfa)
            position += 4;  // endbr64
        else if (at[0] >= 0x50 && at[0] <= 0x57)
            position += 1;  // push %rax..%rdi
        else if (at[0] == 0x41 && at[1] >= 0x50 && at[1] <= 0x57)
            position += 2;  // push %r8..%r15
        else
            break;
    }
    return position;
}

// Argument registers that the entry program reads for an allocator symbol:
// the size, and the block or result pointer where there is one.
int arguments_read(const std::string& symbol) {
    static const std::map<std::string, int> by_symbol = {
        {"calloc", 2},         {"realloc", 2},       {"reallocarray", 3},
        {"posix_memalign", 3}, {"aligned_alloc", 2}, {"memalign", 2},
    };
    auto found = by_symbol.find(symbol);
    // malloc, valloc, pvalloc, free and every operator new: the first.
    return found != by_symbol.end() ? found->second : 1;
}

// Bytes from the function at `function_offset` of the file to the
// instruction its probes go on (see probe_placement.h).
std::uint64_t emulated_entry_skip(const std::string& path, std::uint64_t function_offset,
                                  int arguments) {
    std::uint8_t code[192] = {};
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t count = pread(fd, code, sizeof(code), static_cast<off_t>(function_offset));
    close(fd);
    return count > 0 ? emulated_probe_offset(code, static_cast<std::size_t>(count), arguments) : 0;
}

}  // namespace

const std::vector<std::string>& malloc_family_symbols() {
    static const std::vector<std::string> names = {
        "malloc",         "calloc",        "realloc", "reallocarray", "posix_memalign",
        "aligned_alloc",  "memalign",      "valloc",  "pvalloc",      "free",
    };
    return names;
}

const std::vector<std::string>& operator_new_symbols() {
    static const std::vector<std::string> names = {
        "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
        "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
        "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    };
    return names;
}

std::optional<AllocatorFile> inspect_allocator_file(const std::string& open_path) {
    elf_version(EV_CURRENT);
    ElfFile file(open_path);
    Elf* elf = file.get();
    if (!elf)
        return std::nullopt;

    std::map<std::string, std::uint64_t> functions;
    for (Elf_Scn* section = elf_nextscn(elf, nullptr); section; section = elf_nextscn(elf, section)) {
        GElf_Shdr header;
        if (gelf_getshdr(section, &header) &&
            (header.sh_type == SHT_DYNSYM || header.sh_type == SHT_SYMTAB))
            collect_functions(elf, section, functions);
    }

    AllocatorFile result;
    result.open_path = open_path;
    auto add = [&](const std::string& name) {
        auto found = functions.find(name);
        if (found == functions.end())
            return;
        auto offset = file_offset_of(elf, found->second);
        if (!offset)
            return;
        result.functions.push_back(
            {name, *offset + emulated_entry_skip(open_path, *offset, arguments_read(name))});
    };
    for (const auto& name : malloc_family_symbols())
        add(name);
    for (const auto& name : operator_new_symbols())
        add(name);
    auto start_main = functions.find("__libc_start_main");
    if (start_main != functions.end()) {
        if (auto offset = file_offset_of(elf, start_main->second))
            result.start_main_offset = *offset + stepped_instruction_offset(open_path, *offset);
    }

    bool has_malloc = functions.count("malloc") != 0;
    for (const auto& [symbol, allocator] : kOtherAllocators) {
        if (!has_malloc && functions.count(symbol)) {
            result.unprobed_allocator = allocator;
            break;
        }
    }
    return result;
}

std::vector<MappedFile> executable_files(int pid, const std::vector<MapsEntry>& maps) {
    std::vector<MappedFile> files;
    std::set<std::pair<std::uint64_t, std::uint64_t>> seen;
    for (const auto& entry : maps) {
        if (!entry.executable || !entry.is_file() || entry.path.empty() || entry.path[0] != '/')
            continue;
        std::uint64_t device = makedev(entry.dev_major, entry.dev_minor);
        if (!seen.insert({device, entry.inode}).second)
            continue;
        // Through the process's root, which a container's own files need;
        // a chrooted process shows paths from memobserve's root instead,
        // and map_files reaches the mapped file whatever the path says.
        std::string open_path = fmt::format("/proc/{}/root{}", pid, entry.path);
        struct stat status;
        if (stat(open_path.c_str(), &status) != 0 || status.st_ino != entry.inode)
            open_path = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, entry.start, entry.end);
        files.push_back({entry.path, open_path, device, entry.inode});
    }
    return files;
}

}  // namespace memobserve
