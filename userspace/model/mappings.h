// Address-space mappings made while tracing, per process and site, kept from
// the mmap, munmap, mremap and brk events. Partial unmaps split mappings.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "memobserve/abi.h"
#include "collectors/pagemap.h"

namespace memobserve {

struct SiteId {
    std::uint32_t pid = 0;
    std::int32_t stack_id = 0;
    std::uint64_t caller = 0;

    static SiteId from(const mo_site_key& key) { return {key.pid, key.stack_id, key.caller}; }
    auto operator<=>(const SiteId&) const = default;
};

struct SiteIdHash {
    std::size_t operator()(const SiteId& site) const {
        std::uint64_t mixed = (std::uint64_t{site.pid} << 32 | static_cast<std::uint32_t>(site.stack_id)) ^
                              (site.caller * 0x9e3779b97f4a7c15);
        return std::hash<std::uint64_t>{}(mixed);
    }
};

struct Mapping {
    std::uint64_t end = 0;  // exclusive
    SiteId site;
    bool file_backed = false;
};

class MappingTracker {
public:
    explicit MappingTracker(std::uint64_t page_size) : page_size_(page_size) {}

    // Apply one ring-buffer event; events that are not address-space changes
    // are ignored.
    void apply(const mo_event& event);

    // Mapped bytes per site now (file-backed bytes as a part of it).
    struct SiteMapped {
        std::uint64_t bytes = 0;
        std::uint64_t file_bytes = 0;
    };
    std::map<SiteId, SiteMapped> mapped_by_site() const;

    // Ranges mapped by each site of process `pid`.
    std::map<SiteId, std::vector<AddressRange>> ranges_by_site(std::uint32_t pid) const;

    std::size_t mapping_count() const;

private:
    void map(std::uint32_t pid, std::uint64_t start, std::uint64_t end, const Mapping& mapping);
    void unmap(std::uint32_t pid, std::uint64_t start, std::uint64_t end);
    std::uint64_t page_up(std::uint64_t value) const;
    std::uint64_t page_down(std::uint64_t value) const;

    std::uint64_t page_size_;
    std::map<std::uint32_t, std::map<std::uint64_t, Mapping>> processes_;  // pid -> start -> mapping
};

}  // namespace memobserve
