#include "model/mappings.h"

#include <iterator>

namespace memobserve {

namespace {
constexpr std::uint32_t kMapAnonymous = 0x20;
}  // namespace

std::uint64_t MappingTracker::page_up(std::uint64_t value) const {
    return (value + page_size_ - 1) & ~(page_size_ - 1);
}

std::uint64_t MappingTracker::page_down(std::uint64_t value) const {
    return value & ~(page_size_ - 1);
}

void MappingTracker::apply(const mo_event& event) {
    SiteId site = SiteId::from(event.site);
    switch (event.type) {
    case MO_EVENT_MMAP: {
        bool file_backed = (event.flags & kMapAnonymous) == 0 && event.fd >= 0;
        map(event.pid, event.address, event.address + page_up(event.length),
            {0, site, file_backed});
        break;
    }
    case MO_EVENT_MUNMAP:
        unmap(event.pid, page_down(event.address), event.address + page_up(event.length));
        break;
    case MO_EVENT_MREMAP: {
        bool file_backed = false;
        auto& mappings = processes_[event.pid];
        auto found = mappings.upper_bound(event.old_address);
        if (found != mappings.begin() && std::prev(found)->second.end > event.old_address)
            file_backed = std::prev(found)->second.file_backed;
        unmap(event.pid, event.old_address, event.old_address + page_up(event.old_length));
        map(event.pid, event.address, event.address + page_up(event.length), {0, site, file_backed});
        break;
    }
    case MO_EVENT_BRK:
        if (event.address > event.old_address)
            map(event.pid, page_up(event.old_address), page_up(event.address), {0, site, false});
        else
            unmap(event.pid, page_up(event.address), page_up(event.old_address));
        break;
    case MO_EVENT_EXEC:
        processes_.erase(event.pid);
        break;
    default:
        break;
    }
}

void MappingTracker::map(std::uint32_t pid, std::uint64_t start, std::uint64_t end,
                         const Mapping& mapping) {
    if (end <= start)
        return;
    // A new mapping replaces whatever it overlaps (MAP_FIXED, or a range the
    // tracker never saw being unmapped).
    unmap(pid, start, end);
    Mapping stored = mapping;
    stored.end = end;
    processes_[pid][start] = stored;
}

void MappingTracker::unmap(std::uint32_t pid, std::uint64_t start, std::uint64_t end) {
    auto process = processes_.find(pid);
    if (process == processes_.end() || end <= start)
        return;
    auto& mappings = process->second;

    auto it = mappings.lower_bound(start);
    if (it != mappings.begin() && std::prev(it)->second.end > start)
        --it;
    while (it != mappings.end() && it->first < end) {
        std::uint64_t mapping_start = it->first;
        Mapping mapping = it->second;
        it = mappings.erase(it);
        if (mapping_start < start)
            mappings[mapping_start] = {start, mapping.site, mapping.file_backed};
        if (mapping.end > end)
            it = mappings.emplace(end, Mapping{mapping.end, mapping.site, mapping.file_backed}).first;
    }
}

std::map<SiteId, MappingTracker::SiteMapped> MappingTracker::mapped_by_site() const {
    std::map<SiteId, SiteMapped> result;
    for (const auto& [pid, mappings] : processes_) {
        for (const auto& [start, mapping] : mappings) {
            auto& mapped = result[mapping.site];
            mapped.bytes += mapping.end - start;
            if (mapping.file_backed)
                mapped.file_bytes += mapping.end - start;
        }
    }
    return result;
}

std::map<SiteId, std::vector<AddressRange>> MappingTracker::ranges_by_site(std::uint32_t pid) const {
    std::map<SiteId, std::vector<AddressRange>> result;
    auto process = processes_.find(pid);
    if (process == processes_.end())
        return result;
    for (const auto& [start, mapping] : process->second)
        result[mapping.site].push_back({start, mapping.end});
    return result;
}

std::size_t MappingTracker::mapping_count() const {
    std::size_t count = 0;
    for (const auto& [pid, mappings] : processes_)
        count += mappings.size();
    return count;
}

}  // namespace memobserve
