#include "collectors/procfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "util/error.h"

namespace memobserve {

namespace {

class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() {
        if (fd_ >= 0)
            close(fd_);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;

    int get() const { return fd_; }

private:
    int fd_;
};

// Text of a file, or the errno of the open or read that failed.
struct FileContents {
    std::optional<std::string> text;
    int error = 0;
};

// Reads with read(2) until end of file, because /proc files report size 0.
FileContents read_file(const std::string& path) {
    FileDescriptor fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0)
        return {std::nullopt, errno};

    std::string text;
    char buffer[64 * 1024];
    while (true) {
        ssize_t count = read(fd.get(), buffer, sizeof buffer);
        if (count < 0 && errno == EINTR)
            continue;
        if (count < 0)
            return {std::nullopt, errno};
        if (count == 0)
            break;
        text.append(buffer, static_cast<std::size_t>(count));
    }
    return {std::move(text), 0};
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        std::size_t end = text.find('\n');
        lines.push_back(text.substr(0, end));
        if (end == std::string_view::npos)
            break;
        text.remove_prefix(end + 1);
    }
    return lines;
}

// Removes and returns the next space-separated field of `rest`.
std::string_view take_field(std::string_view& rest) {
    std::size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) {
        rest = {};
        return {};
    }
    rest.remove_prefix(start);
    std::size_t end = rest.find(' ');
    std::string_view field = rest.substr(0, end);
    rest.remove_prefix(field.size());
    return field;
}

// Parses all of `text` as an unsigned number. Returns empty when anything is
// left over.
template <typename Number>
std::optional<Number> parse_number(std::string_view text, int base) {
    Number value{};
    const char* end = text.data() + text.size();
    auto [stop, error] = std::from_chars(text.data(), end, value, base);
    if (text.empty() || error != std::errc{} || stop != end)
        return std::nullopt;
    return value;
}

// Parses "start-end" of a maps line.
bool parse_address_range(std::string_view field, MapsEntry& entry) {
    std::size_t dash = field.find('-');
    if (dash == std::string_view::npos)
        return false;
    auto start = parse_number<std::uint64_t>(field.substr(0, dash), 16);
    auto end = parse_number<std::uint64_t>(field.substr(dash + 1), 16);
    if (!start || !end)
        return false;
    entry.start = *start;
    entry.end = *end;
    return true;
}

// Parses permissions such as "r-xp" ('p' private, 's' shared).
bool parse_permissions(std::string_view field, MapsEntry& entry) {
    if (field.size() != 4)
        return false;
    entry.readable = field[0] == 'r';
    entry.writable = field[1] == 'w';
    entry.executable = field[2] == 'x';
    entry.shared = field[3] == 's';
    return true;
}

// Parses the device "major:minor", both in hex.
bool parse_device(std::string_view field, MapsEntry& entry) {
    std::size_t colon = field.find(':');
    if (colon == std::string_view::npos)
        return false;
    auto major = parse_number<unsigned>(field.substr(0, colon), 16);
    auto minor = parse_number<unsigned>(field.substr(colon + 1), 16);
    if (!major || !minor)
        return false;
    entry.dev_major = *major;
    entry.dev_minor = *minor;
    return true;
}

// Sets the path from the rest of the line. The path may contain spaces, so
// everything after the padding belongs to it.
void set_path(std::string_view rest, MapsEntry& entry) {
    constexpr std::string_view kDeletedSuffix = " (deleted)";
    std::size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos)
        return;
    rest.remove_prefix(start);
    // NOTE: the maps format cannot tell an unlinked file from a file whose own
    // name ends in " (deleted)", so the latter is reported as deleted too.
    if (rest.ends_with(kDeletedSuffix)) {
        rest.remove_suffix(kDeletedSuffix.size());
        entry.deleted = true;
    }
    entry.path = std::string(rest);
}

std::optional<MapsEntry> parse_maps_line(std::string_view line) {
    MapsEntry entry;
    std::string_view rest = line;
    if (!parse_address_range(take_field(rest), entry) || !parse_permissions(take_field(rest), entry))
        return std::nullopt;

    auto offset = parse_number<std::uint64_t>(take_field(rest), 16);
    if (!offset || !parse_device(take_field(rest), entry))
        return std::nullopt;
    entry.offset = *offset;

    auto inode = parse_number<std::uint64_t>(take_field(rest), 10);
    if (!inode)
        return std::nullopt;
    entry.inode = *inode;

    set_path(rest, entry);
    return entry;
}

// Values of the "Name:   123 kB" lines of smaps_rollup or status, in bytes.
// Lines with other units or none (Threads, Name...) are left out.
std::map<std::string_view, std::uint64_t> parse_kilobyte_fields(std::string_view text) {
    std::map<std::string_view, std::uint64_t> fields;
    for (std::string_view line : split_lines(text)) {
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos)
            continue;
        std::string_view rest = line.substr(colon + 1);
        std::size_t start = rest.find_first_not_of(" \t");
        if (start == std::string_view::npos || !rest.ends_with(" kB"))
            continue;
        rest = rest.substr(start, rest.size() - start - 3);
        if (auto kilobytes = parse_number<std::uint64_t>(rest, 10))
            fields[line.substr(0, colon)] = *kilobytes * 1024;
    }
    return fields;
}

std::uint64_t field_or_zero(const std::map<std::string_view, std::uint64_t>& fields,
                            std::string_view name) {
    auto found = fields.find(name);
    return found == fields.end() ? 0 : found->second;
}

// Sets the counter that the smaps field `name` feeds, if any. `value` is the
// text after the colon.
void set_smaps_field(std::string_view name, std::string_view value, SmapsEntry& entry) {
    if (name == "VmFlags") {
        std::string_view rest = value;
        for (std::string_view flag = take_field(rest); !flag.empty(); flag = take_field(rest)) {
            if (flag == "ht")
                entry.hugetlb = true;
        }
        return;
    }
    std::size_t start = value.find_first_not_of(" \t");
    if (start == std::string_view::npos || !value.ends_with(" kB"))
        return;
    auto kilobytes = parse_number<std::uint64_t>(value.substr(start, value.size() - start - 3), 10);
    if (!kilobytes)
        return;
    std::uint64_t bytes = *kilobytes * 1024;

    if (name == "Size")
        entry.size_bytes = bytes;
    else if (name == "Rss")
        entry.rss_bytes = bytes;
    else if (name == "Pss")
        entry.pss_bytes = bytes;
    else if (name == "Private_Clean" || name == "Private_Dirty")
        entry.uss_bytes += bytes;
    else if (name == "Private_Hugetlb") {
        entry.uss_bytes += bytes;
        entry.hugetlb_bytes += bytes;
    } else if (name == "Shared_Hugetlb")
        entry.hugetlb_bytes += bytes;
    else if (name == "Swap")
        entry.swap_bytes = bytes;
    else if (name == "AnonHugePages")
        entry.anon_huge_bytes = bytes;
    else if (name == "KernelPageSize")
        entry.kernel_page_bytes = bytes;
}

std::string_view without_trailing_newline(std::string_view text) {
    if (text.ends_with('\n'))
        text.remove_suffix(1);
    return text;
}

}  // namespace

std::vector<MapsEntry> parse_maps(std::string_view text) {
    std::vector<MapsEntry> entries;
    for (std::string_view line : split_lines(text)) {
        if (line.find_first_not_of(' ') == std::string_view::npos)
            continue;
        auto entry = parse_maps_line(line);
        if (!entry)
            throw Error(fmt::format("invalid line in a maps file: \"{}\"", line));
        entries.push_back(std::move(*entry));
    }
    return entries;
}

std::optional<std::vector<MapsEntry>> read_maps(int pid) {
    auto text = read_process_file(pid, "maps");
    if (!text)
        return std::nullopt;
    return parse_maps(*text);
}

std::vector<SmapsEntry> parse_smaps(std::string_view text) {
    std::vector<SmapsEntry> entries;
    for (std::string_view line : split_lines(text)) {
        if (line.find_first_not_of(' ') == std::string_view::npos)
            continue;
        // A field line starts with "Name:". A maps line has no colon in its
        // first field, which is the address range.
        std::string_view first = line.substr(0, line.find(' '));
        if (first.ends_with(':')) {
            if (entries.empty())
                throw Error(fmt::format("invalid smaps file: field before the first mapping: \"{}\"", line));
            set_smaps_field(first.substr(0, first.size() - 1), line.substr(first.size()), entries.back());
            continue;
        }
        auto maps = parse_maps_line(line);
        if (!maps)
            throw Error(fmt::format("invalid line in an smaps file: \"{}\"", line));
        entries.push_back({});
        entries.back().maps = std::move(*maps);
    }
    return entries;
}

std::optional<std::vector<SmapsEntry>> read_smaps(int pid) {
    auto text = read_process_file(pid, "smaps");
    if (!text)
        return std::nullopt;
    return parse_smaps(*text);
}

std::optional<std::uint64_t> parse_syscall_stack_pointer(std::string_view syscall) {
    std::vector<std::string_view> values;
    std::string_view rest = without_trailing_newline(syscall);
    for (std::string_view value = take_field(rest); !value.empty(); value = take_field(rest))
        values.push_back(value);
    if (values.size() < 3 || !values[values.size() - 2].starts_with("0x"))
        return std::nullopt;
    return parse_number<std::uint64_t>(values[values.size() - 2].substr(2), 16);
}

std::vector<std::uint64_t> read_thread_stack_pointers(int pid) {
    std::vector<std::uint64_t> stack_pointers;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), error)) {
        auto text = read_text_file(entry.path().string() + "/syscall");
        if (!text)
            continue;
        if (auto stack_pointer = parse_syscall_stack_pointer(*text))
            stack_pointers.push_back(*stack_pointer);
    }
    return stack_pointers;
}

ProcessMemory parse_process_memory(std::string_view smaps_rollup, std::string_view status) {
    auto rollup = parse_kilobyte_fields(smaps_rollup);
    auto totals = parse_kilobyte_fields(status);

    ProcessMemory memory;
    memory.vss_bytes = field_or_zero(totals, "VmSize");
    memory.rss_anon_bytes = field_or_zero(totals, "RssAnon");
    memory.rss_file_bytes = field_or_zero(totals, "RssFile");
    memory.rss_shmem_bytes = field_or_zero(totals, "RssShmem");
    memory.rss_bytes = field_or_zero(rollup, "Rss");
    memory.pss_bytes = field_or_zero(rollup, "Pss");
    memory.uss_bytes = field_or_zero(rollup, "Private_Clean") + field_or_zero(rollup, "Private_Dirty") +
                       field_or_zero(rollup, "Private_Hugetlb");
    memory.swap_bytes = field_or_zero(rollup, "Swap");
    return memory;
}

std::optional<ProcessMemory> read_process_memory(int pid) {
    auto smaps_rollup = read_process_file(pid, "smaps_rollup");
    if (!smaps_rollup)
        return std::nullopt;
    auto status = read_process_file(pid, "status");
    if (!status)
        return std::nullopt;
    return parse_process_memory(*smaps_rollup, *status);
}

std::optional<std::string> read_comm(int pid) {
    auto text = read_process_file(pid, "comm");
    if (!text)
        return std::nullopt;
    return std::string(without_trailing_newline(*text));
}

int parse_nspid(std::string_view status) {
    std::size_t start = status.find("\nNSpid:");
    if (start == std::string_view::npos)
        return 0;
    std::string_view line = status.substr(start + 7);
    line = line.substr(0, line.find('\n'));
    std::size_t last = line.find_last_of(" \t");
    std::string_view value = last == std::string_view::npos ? line : line.substr(last + 1);
    int pid = 0;
    std::from_chars(value.data(), value.data() + value.size(), pid);
    return pid;
}

std::optional<int> read_nspid(int pid) {
    auto status = read_process_file(pid, "status");
    if (!status)
        return std::nullopt;
    return parse_nspid(*status);
}

std::vector<int> list_processes() {
    std::vector<int> pids;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
        const std::string name = entry.path().filename().string();
        int pid = 0;
        auto [stop, failure] = std::from_chars(name.data(), name.data() + name.size(), pid);
        if (failure != std::errc{} || stop != name.data() + name.size() || pid <= 0)
            continue;
        // Kernel threads have no command line and no user memory.
        auto cmdline = read_text_file(fmt::format("/proc/{}/cmdline", pid));
        if (cmdline && !cmdline->empty())
            pids.push_back(pid);
    }
    std::sort(pids.begin(), pids.end());
    return pids;
}

std::optional<std::string> read_cmdline(int pid) {
    auto text = read_process_file(pid, "cmdline");
    if (!text)
        return std::nullopt;
    std::string cmdline = std::move(*text);
    while (!cmdline.empty() && cmdline.back() == '\0')
        cmdline.pop_back();
    for (char& c : cmdline) {
        if (c == '\0')
            c = ' ';
    }
    return cmdline;
}

bool process_exists(int pid) {
    if (pid <= 0)
        return false;
    FileContents stat = read_file(fmt::format("/proc/{}/stat", pid));
    if (!stat.text)
        return false;
    // The state follows the command name, which is in parentheses and may
    // itself contain ") ", so search from the last one.
    std::size_t paren = stat.text->rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.text->size())
        return false;
    char state = (*stat.text)[paren + 2];
    return state != 'Z' && state != 'X';
}

std::optional<std::string> read_text_file(const std::string& path) {
    return read_file(path).text;
}

std::optional<std::string> read_process_file(int pid, std::string_view name) {
    std::string path = fmt::format("/proc/{}/{}", pid, name);
    FileContents contents = read_file(path);
    if (contents.text)
        return std::move(contents.text);
    if (contents.error == ENOENT || contents.error == ESRCH)
        return std::nullopt;

    std::string hint;
    if (contents.error == EACCES || contents.error == EPERM)
        hint = "run memobserve as root to read processes of other users";
    throw Error(fmt::format("failed to read {}: {}", path, describe_errno(contents.error)), hint);
}

}  // namespace memobserve
