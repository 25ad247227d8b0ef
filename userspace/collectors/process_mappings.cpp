#include "collectors/process_mappings.h"

#include <algorithm>

namespace memobserve {

namespace {

bool is_anonymous(const MapsEntry& maps) {
    // "[anon:NAME]" is an anonymous mapping named with PR_SET_VMA_ANON_NAME.
    return maps.inode == 0 && (maps.path.empty() || maps.path.starts_with("[anon:"));
}

bool contains_stack_pointer(const MapsEntry& maps, const std::vector<std::uint64_t>& stack_pointers) {
    return std::any_of(stack_pointers.begin(), stack_pointers.end(), [&](std::uint64_t stack_pointer) {
        return stack_pointer >= maps.start && stack_pointer < maps.end;
    });
}

// Shared memory even when mapped privately: tmpfs files under /dev/shm,
// System V segments ("/SYSV0000002a (deleted)"), memfd files and the kernel's
// name for anonymous shared memory.
bool is_shared_memory_path(const std::string& path) {
    return path.starts_with("/dev/shm/") || path.starts_with("/SYSV") || path.starts_with("/memfd:") ||
           path.starts_with("[anon_shmem");
}

std::string permissions_of(const MapsEntry& maps) {
    std::string text = "----";
    if (maps.readable)
        text[0] = 'r';
    if (maps.writable)
        text[1] = 'w';
    if (maps.executable)
        text[2] = 'x';
    text[3] = maps.shared ? 's' : 'p';
    return text;
}

}  // namespace

const char* classify_mapping(const SmapsEntry& entry, const std::vector<std::uint64_t>& stack_pointers) {
    const MapsEntry& maps = entry.maps;
    if (maps.path == "[heap]")
        return "heap";
    // A thread stack that glibc or another runtime mapped is anonymous memory
    // with no name, so the thread's stack pointer shows which one it is.
    if (maps.path == "[stack]" || (is_anonymous(maps) && contains_stack_pointer(maps, stack_pointers)))
        return "stack";
    if (maps.path == "[vdso]" || maps.path == "[vvar]" || maps.path == "[vvar_vclock]" ||
        maps.path == "[vsyscall]")
        return "vdso";
    if (entry.hugetlb || entry.anon_huge_bytes > 0)
        return "huge";
    if (maps.shared || is_shared_memory_path(maps.path))
        return "shared";
    if (maps.is_file())
        return "file";
    if (is_anonymous(maps))
        return "anonymous";
    return "other";
}

std::vector<MappingInfo> describe_mappings(const std::vector<SmapsEntry>& entries,
                                           const std::vector<std::uint64_t>& stack_pointers) {
    std::vector<MappingInfo> mappings;
    mappings.reserve(entries.size());
    for (const SmapsEntry& entry : entries) {
        MappingInfo mapping;
        mapping.kind = classify_mapping(entry, stack_pointers);
        mapping.start = entry.maps.start;
        mapping.end = entry.maps.end;
        mapping.permissions = permissions_of(entry.maps);
        mapping.path = entry.maps.path;
        if (entry.maps.deleted)
            mapping.path += " (deleted)";
        mapping.size_bytes = entry.size_bytes;
        mapping.rss_bytes = entry.rss_bytes;
        mapping.pss_bytes = entry.pss_bytes;
        mapping.uss_bytes = entry.uss_bytes;
        mapping.swap_bytes = entry.swap_bytes;
        mapping.untraced_resident_bytes = entry.rss_bytes;
        mappings.push_back(std::move(mapping));
    }
    return mappings;
}

std::vector<AddressRange> clip_ranges(const std::vector<AddressRange>& traced, std::uint64_t start,
                                      std::uint64_t end) {
    std::vector<AddressRange> clipped;
    // The first range that ends after `start`. The ranges are sorted by start
    // and do not overlap, so their ends are sorted too.
    auto it = std::upper_bound(traced.begin(), traced.end(), start,
                               [](std::uint64_t address, const AddressRange& range) { return address < range.end; });
    for (; it != traced.end() && it->start < end; ++it)
        clipped.push_back({std::max(it->start, start), std::min(it->end, end)});
    return clipped;
}

void split_traced_residency(std::vector<MappingInfo>& mappings, std::vector<AddressRange> traced,
                            Pagemap& pagemap) {
    std::vector<AddressRange> merged = merge_ranges(std::move(traced));
    for (MappingInfo& mapping : mappings) {
        std::vector<AddressRange> inside = clip_ranges(merged, mapping.start, mapping.end);
        if (inside.empty())
            continue;
        // smaps and pagemap are read one after the other, so a page may have
        // come or gone in between. NOTE: smaps leaves hugetlbfs pages out of
        // Rss but pagemap shows them present, so a traced hugetlbfs mapping
        // counts at most its Rss, which is 0.
        std::uint64_t resident = pagemap.resident_bytes(std::move(inside));
        mapping.traced_resident_bytes = std::min(resident, mapping.rss_bytes);
        mapping.untraced_resident_bytes = mapping.rss_bytes - mapping.traced_resident_bytes;
    }
}

std::optional<std::vector<MappingInfo>> read_process_mappings(int pid, std::vector<AddressRange> traced,
                                                               std::uint64_t page_size) {
    std::vector<std::uint64_t> stack_pointers = read_thread_stack_pointers(pid);
    auto entries = read_smaps(pid);
    if (!entries)
        return std::nullopt;
    std::vector<MappingInfo> mappings = describe_mappings(*entries, stack_pointers);
    if (!traced.empty()) {
        Pagemap pagemap(pid, page_size);
        split_traced_residency(mappings, std::move(traced), pagemap);
    }
    return mappings;
}

}  // namespace memobserve
