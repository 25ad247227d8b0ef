#include "session/bpf_session.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <map>
#include <utility>

#include "memobserve.skel.h"
#include "util/error.h"
#include "util/log.h"

namespace memobserve {

static_assert(sizeof(mo_site_key) == 16);
static_assert(sizeof(mo_site_counters) == 56);
static_assert(sizeof(mo_live_key) == 16);
static_assert(sizeof(mo_live_value) == 16);
static_assert(sizeof(mo_event) == 112);

namespace {

int print_libbpf_message(libbpf_print_level level, const char* format, va_list arguments) {
    if (level == LIBBPF_DEBUG && !log::enabled(log::Level::debug))
        return 0;
    if (level == LIBBPF_INFO && !log::enabled(log::Level::debug))
        return 0;
    if (level == LIBBPF_WARN && !log::enabled(log::Level::info))
        return 0;
    return std::vfprintf(stderr, format, arguments);
}

std::string permission_hint() {
    return "memobserve needs root, or the capabilities CAP_BPF, CAP_PERFMON and "
           "CAP_SYS_ADMIN: run it with sudo";
}

[[noreturn]] void fail_load(const std::string& what, int error) {
    if (error == EPERM || error == EACCES)
        throw Error(fmt::format("{}: {}", what, describe_errno(error)), permission_hint());
    throw Error(fmt::format("{}: {}", what, describe_errno(error)),
                "run with -vv to see the BPF loader's messages");
}

int ring_callback(void* context, void* data, std::size_t size) {
    if (size < sizeof(mo_event))
        return 0;
    auto* handler = static_cast<std::function<void(const mo_event&)>*>(context);
    mo_event event;
    std::memcpy(&event, data, sizeof(event));
    (*handler)(event);
    return 0;
}

// The kind of an allocator symbol: the cookie of its entry probe.
std::uint64_t allocator_kind(const std::string& symbol) {
    static const std::map<std::string, mo_alloc_kind> by_symbol = {
        {"malloc", MO_ALLOC_MALLOC},
        {"calloc", MO_ALLOC_CALLOC},
        {"realloc", MO_ALLOC_REALLOC},
        {"reallocarray", MO_ALLOC_REALLOCARRAY},
        {"posix_memalign", MO_ALLOC_POSIX_MEMALIGN},
        {"aligned_alloc", MO_ALLOC_ALIGNED_ALLOC},
        {"memalign", MO_ALLOC_MEMALIGN},
        {"valloc", MO_ALLOC_VALLOC},
        {"pvalloc", MO_ALLOC_PVALLOC},
        {"free", MO_ALLOC_FREE},
    };
    auto found = by_symbol.find(symbol);
    return found != by_symbol.end() ? found->second : MO_ALLOC_OPERATOR_NEW;
}

// Linux's numbers for uprobe_multi links (6.6), which the kernel headers
// and libbpf 1.1 of Debian 12 do not have.
constexpr unsigned kAttachUprobeMulti = 48;      // enum bpf_attach_type
constexpr unsigned kUprobeMultiReturn = 1u << 0;  // BPF_F_UPROBE_MULTI_RETURN

// BPF_LINK_CREATE's attributes for a uprobe_multi link, laid out as in
// union bpf_attr.
struct UprobeMultiAttributes {
    __u32 program_fd;
    __u32 target_fd;
    __u32 attach_type;
    __u32 flags;
    __u64 path;
    __u64 offsets;
    __u64 reference_counter_offsets;
    __u64 cookies;
    __u32 count;
    __u32 multi_flags;
    __u32 pid;
};

// Read every entry of a hash map in batches of up to 4096.
template <typename Key, typename Value>
std::vector<std::pair<Key, Value>> read_hash_map(int fd, std::uint32_t max_entries) {
    std::vector<std::pair<Key, Value>> entries;
    std::vector<Key> keys(4096);
    std::vector<Value> values(4096);
    alignas(8) unsigned char token[sizeof(Key) < 8 ? 8 : sizeof(Key)];
    bool first = true;
    entries.reserve(1024);

    while (entries.size() <= max_entries) {
        __u32 count = static_cast<__u32>(keys.size());
        int result = bpf_map_lookup_batch(fd, first ? nullptr : token, token, keys.data(),
                                          values.data(), &count, nullptr);
        int error = result < 0 ? errno : 0;
        for (__u32 i = 0; i < count; ++i)
            entries.emplace_back(keys[i], values[i]);
        first = false;
        if (error == ENOENT)
            break;
        if (error == ENOSPC) {
            keys.resize(keys.size() * 2);
            values.resize(values.size() * 2);
            continue;
        }
        if (error != 0)
            throw Error(fmt::format("failed to read a BPF map: {}", describe_errno(error)));
    }
    return entries;
}

}  // namespace

BpfSession::MappedArray::MappedArray(bpf_map* map) {
    std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    length_ = (bpf_map__value_size(map) * std::size_t{bpf_map__max_entries(map)} + page - 1) / page * page;
    address_ = mmap(nullptr, length_, PROT_READ, MAP_SHARED, bpf_map__fd(map), 0);
    if (address_ == MAP_FAILED) {
        address_ = nullptr;
        throw Error(fmt::format("failed to map the BPF array {} into memory: {}", bpf_map__name(map),
                                describe_errno(errno)));
    }
}

BpfSession::MappedArray::~MappedArray() {
    if (address_)
        munmap(address_, length_);
}

BpfSession::MappedArray& BpfSession::MappedArray::operator=(MappedArray&& other) noexcept {
    std::swap(address_, other.address_);
    std::swap(length_, other.length_);
    return *this;
}

void BpfSession::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

BpfSession::UprobeLink::~UprobeLink() {
    if (fd_ >= 0)
        close(fd_);
}

BpfSession::UprobeLink::UprobeLink(UprobeLink&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), probes_(other.probes_), is_return_(other.is_return_) {}

BpfSession::UprobeLink& BpfSession::UprobeLink::operator=(UprobeLink&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0)
            close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        probes_ = other.probes_;
        is_return_ = other.is_return_;
    }
    return *this;
}

int BpfSession::attach_uprobes(bpf_program* program, const std::string& path,
                               const std::vector<std::uint64_t>& offsets,
                               const std::vector<std::uint64_t>& cookies, int pid,
                               bool is_return) {
    UprobeMultiAttributes attributes = {};
    attributes.program_fd = static_cast<__u32>(bpf_program__fd(program));
    attributes.attach_type = kAttachUprobeMulti;
    attributes.path = reinterpret_cast<std::uintptr_t>(path.c_str());
    attributes.offsets = reinterpret_cast<std::uintptr_t>(offsets.data());
    attributes.cookies = reinterpret_cast<std::uintptr_t>(cookies.data());
    attributes.count = static_cast<__u32>(offsets.size());
    attributes.multi_flags = is_return ? kUprobeMultiReturn : 0;
    attributes.pid = pid == kAllProcesses ? 0 : static_cast<__u32>(pid);
    long fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attributes, sizeof(attributes));
    return fd >= 0 ? static_cast<int>(fd) : -errno;
}

BpfSession::BpfSession(const TraceOptions& options) {
    libbpf_set_print(print_libbpf_message);

    skeleton_ = memobserve_bpf__open();
    if (!skeleton_)
        fail_load("failed to open the BPF object", errno);

    skeleton_->rodata->filter_mode = options.filter;
    skeleton_->rodata->target_cgroup_id = options.cgroup_id;
    skeleton_->rodata->target_cgroup_level = options.cgroup_level;
    skeleton_->rodata->self_tgid = static_cast<__u32>(getpid());
    skeleton_->rodata->fault_sample_bytes = options.fault_sample_bytes;
    skeleton_->rodata->follow_children = options.follow_children;
    skeleton_->rodata->page_size = static_cast<__u64>(sysconf(_SC_PAGESIZE));
    bpf_map__set_max_entries(skeleton_->maps.targets, options.max_targets);
    bpf_map__set_max_entries(skeleton_->maps.site_slots, options.max_sites);
    bpf_map__set_max_entries(skeleton_->maps.site_keys, options.max_sites);
    bpf_map__set_max_entries(skeleton_->maps.site_counters_by_slot, options.max_sites);
    bpf_map__set_max_entries(skeleton_->maps.stacks, options.max_stacks);
    bpf_map__set_max_entries(skeleton_->maps.live, options.max_live_allocations);
    // The uprobe programs are attached through uprobe_multi links: the kernel
    // removes all probes of a link with one wait, instead of about 0.1 s per
    // probe.
    for (bpf_program* program : {skeleton_->progs.allocator_enter, skeleton_->progs.allocator_return,
                                 skeleton_->progs.process_start})
        bpf_program__set_expected_attach_type(program,
                                              static_cast<bpf_attach_type>(kAttachUprobeMulti));

    if (memobserve_bpf__load(skeleton_) != 0) {
        int error = errno;
        memobserve_bpf__destroy(skeleton_);
        skeleton_ = nullptr;
        fail_load("failed to load the BPF programs", error);
    }

    try {
        site_keys_ = MappedArray(skeleton_->maps.site_keys);
        site_counters_ = MappedArray(skeleton_->maps.site_counters_by_slot);
        attach_tracepoints();
    } catch (...) {
        tracepoint_links_.clear();
        memobserve_bpf__destroy(skeleton_);
        skeleton_ = nullptr;
        throw;
    }

    ring_ = ring_buffer__new(bpf_map__fd(skeleton_->maps.events), ring_callback, &handler_, nullptr);
    if (!ring_) {
        int error = errno;
        tracepoint_links_.clear();
        memobserve_bpf__destroy(skeleton_);
        skeleton_ = nullptr;
        fail_load("failed to open the BPF ring buffer", error);
    }
}

BpfSession::~BpfSession() {
    ring_buffer__free(ring_);
    detach_allocator_probes();
    process_links_.clear();
    tracepoint_links_.clear();
    memobserve_bpf__destroy(skeleton_);
}

void BpfSession::attach_tracepoints() {
    struct Tracepoint {
        bpf_program* program;
        const char* name;
    };
    const Tracepoint tracepoints[] = {
        {skeleton_->progs.vm_syscall_enter, "raw_syscalls:sys_enter"},
        {skeleton_->progs.vm_syscall_exit, "raw_syscalls:sys_exit"},
        {skeleton_->progs.user_page_fault, "exceptions:page_fault_user"},
        {skeleton_->progs.kernel_page_fault, "exceptions:page_fault_kernel"},
        {skeleton_->progs.process_fork, "sched:sched_process_fork"},
        {skeleton_->progs.process_exec, "sched:sched_process_exec"},
        {skeleton_->progs.process_exit, "sched:sched_process_exit"},
    };
    for (const auto& tracepoint : tracepoints) {
        bpf_link* link = bpf_program__attach(tracepoint.program);
        if (!link) {
            int error = errno;
            throw Error(fmt::format("failed to attach to the tracepoint {}: {}", tracepoint.name,
                                    describe_errno(error)),
                        "memobserve needs BTF-enabled tracepoints (tp_btf, Linux 5.5 or later "
                        "with /sys/kernel/btf/vmlinux)");
        }
        tracepoint_links_.emplace_back(link);
    }
}

void BpfSession::add_target(int pid) {
    __u32 key = static_cast<__u32>(pid);
    __u8 value = 1;
    if (bpf_map__update_elem(skeleton_->maps.targets, &key, sizeof(key), &value, sizeof(value),
                             BPF_ANY) != 0)
        throw Error(fmt::format("failed to add process {} to the target map: {}", pid,
                                describe_errno(errno)),
                    "raise --max-targets");
}

void BpfSession::forget_target(int pid) {
    __u32 key = static_cast<__u32>(pid);
    bpf_map__delete_elem(skeleton_->maps.targets, &key, sizeof(key), 0);
    // The slots stay taken and empty.
    const mo_site_key no_site = {};
    const mo_site_counters no_counters = {};
    std::uint32_t used = sites_used();
    for (__u32 slot = 0; slot < used; ++slot) {
        std::optional<mo_site_key> site = stored_site(slot);
        if (!site || site->pid != key)
            continue;
        bpf_map__delete_elem(skeleton_->maps.site_slots, &*site, sizeof(*site), 0);
        bpf_map__update_elem(skeleton_->maps.site_keys, &slot, sizeof(slot), &no_site,
                             sizeof(no_site), BPF_ANY);
        bpf_map__update_elem(skeleton_->maps.site_counters_by_slot, &slot, sizeof(slot),
                             &no_counters, sizeof(no_counters), BPF_ANY);
    }
    for (const auto& [block, value] : read_live_allocations()) {
        if (block.pid == key)
            bpf_map__delete_elem(skeleton_->maps.live, &block, sizeof(block), 0);
    }
}

bool BpfSession::has_allocator_probes(const AllocatorFile& file, int pid) const {
    return probed_files_.count({file.device, file.inode, pid}) != 0;
}

std::string BpfSession::attach_allocator(const AllocatorFile& file, int pid) {
    if (has_allocator_probes(file, pid))
        return {};

    // The kernel places a link's probes one after the other, in the order
    // given, and on a process it traced before one probe took tens of
    // milliseconds. Frees go first: a free seen before the allocations is
    // only an untracked free, while an allocation seen before the frees
    // would stay live for good.
    std::vector<AllocatorFunction> functions = file.functions;
    std::stable_partition(functions.begin(), functions.end(), [](const AllocatorFunction& function) {
        return allocator_kind(function.name) == MO_ALLOC_FREE;
    });
    std::vector<std::uint64_t> entry_offsets;
    std::vector<std::uint64_t> entry_kinds;
    std::vector<std::uint64_t> return_offsets;
    for (const auto& function : functions) {
        std::uint64_t kind = allocator_kind(function.name);
        entry_offsets.push_back(function.file_offset);
        entry_kinds.push_back(kind);
        if (kind != MO_ALLOC_FREE)
            return_offsets.push_back(function.file_offset);
    }
    if (entry_offsets.empty())
        return {};

    // Return probes first: an entry probe without them records calls whose
    // returns go unseen, while a return probe without an entry finds no call.
    std::vector<UprobeLink> links;
    if (!return_offsets.empty()) {
        std::vector<std::uint64_t> no_cookies(return_offsets.size(), 0);
        int exit = attach_uprobes(skeleton_->progs.allocator_return, file.open_path,
                                  return_offsets, no_cookies, pid, true);
        if (exit < 0)
            return fmt::format("failed to attach return uprobes to the allocator functions of "
                               "{}: {}",
                               file.path, describe_errno(-exit));
        links.emplace_back(exit, return_offsets.size(), true);
    }
    int entry = attach_uprobes(skeleton_->progs.allocator_enter, file.open_path, entry_offsets,
                               entry_kinds, pid, false);
    if (entry < 0)
        return fmt::format("failed to attach uprobes to the allocator functions of {}: {}",
                           file.path, describe_errno(-entry));
    links.emplace_back(entry, entry_offsets.size(), false);

    if (file.start_main_offset != 0) {
        int start = attach_uprobes(skeleton_->progs.process_start, file.open_path,
                                   {file.start_main_offset}, {0}, pid, false);
        // Without it only the first allocation's return is lost: go on.
        if (start >= 0)
            links.emplace_back(start, 1, false);
        else
            log::info("no start probe in {}: {}", file.path, describe_errno(-start));
    }

    auto& owner = pid == kAllProcesses ? uprobe_links_ : process_links_[pid];
    for (auto& link : links)
        owner.push_back(std::move(link));
    probed_files_.insert({file.device, file.inode, pid});
    if (pid == kAllProcesses)
        log::info("probing {} allocator functions in {} ({}) for every process that maps it",
                  file.functions.size(), file.path, file.open_path);
    else
        log::info("process {}: probing {} allocator functions in {}", pid, file.functions.size(),
                  file.path);
    return {};
}

void BpfSession::attach_step_probe(const std::string& open_path, std::uint64_t file_offset, int pid) {
    int link = attach_uprobes(skeleton_->progs.process_start, open_path, {file_offset}, {0}, pid,
                              false);
    if (link < 0) {
        log::info("process {}: no step probe at {}+{:#x}: {}", pid, open_path, file_offset,
                  describe_errno(-link));
        return;
    }
    process_links_[pid].emplace_back(link, 1, false);
}

void BpfSession::detach_uprobes(bool return_probes) {
    auto matches = [&](const UprobeLink& link) { return link.is_return() == return_probes; };
    std::erase_if(uprobe_links_, matches);
    for (auto& [pid, links] : process_links_)
        std::erase_if(links, matches);
}

// Entry probes first: once they are gone, no new call is recorded, and a
// return probe that still fires finds no call to complete. An earlier
// version detached them in the order they were attached. On Linux 6.18 it
// crashed the target in 1 test run in 3, with 30 threads calling new and
// delete. The detach-safety runs of bench/run measure this order.
void BpfSession::detach_allocator_probes() {
    detach_uprobes(false);
    detach_uprobes(true);
}

void BpfSession::detach_process(int pid) {
    process_links_.erase(pid);
    std::erase_if(probed_files_, [pid](const auto& probed) { return std::get<2>(probed) == pid; });
}

std::size_t BpfSession::attached_probe_count() const {
    std::size_t count = 0;
    for (const auto& link : uprobe_links_)
        count += link.probes();
    for (const auto& [pid, links] : process_links_) {
        for (const auto& link : links)
            count += link.probes();
    }
    return count;
}

void BpfSession::poll_events(int timeout_ms, const std::function<void(const mo_event&)>& handler) {
    handler_ = handler;
    int result = ring_buffer__poll(ring_, timeout_ms);
    // Address-space events do not wake memobserve (a wake-up costs the
    // target an interrupt on every mmap), so read what is queued anyway.
    if (result >= 0)
        result = ring_buffer__consume(ring_);
    if (result < 0 && result != -EINTR)
        log::warning("failed to read the BPF ring buffer: {}", describe_errno(-result));
}

std::uint32_t BpfSession::sites_used() const {
    // The BPF programs count past the last slot when the arrays are full.
    return std::min(__atomic_load_n(&skeleton_->bss->sites_used, __ATOMIC_ACQUIRE),
                    bpf_map__max_entries(skeleton_->maps.site_keys));
}

std::vector<std::pair<mo_site_key, mo_site_counters>> BpfSession::read_sites() const {
    std::vector<std::pair<mo_site_key, mo_site_counters>> sites;
    std::uint32_t used = sites_used();
    sites.reserve(used);
    for (std::uint32_t slot = 0; slot < used; ++slot) {
        if (auto key = stored_site(slot))
            sites.emplace_back(*key, site_counters_.values<mo_site_counters>()[slot]);
    }
    return sites;
}

std::optional<mo_site_key> BpfSession::site_in_slot(std::uint32_t slot) const {
    return slot < sites_used() ? stored_site(slot) : std::nullopt;
}

std::optional<mo_site_key> BpfSession::stored_site(std::uint32_t slot) const {
    const mo_site_key& stored = site_keys_.values<mo_site_key>()[slot];
    // The BPF program writes the pid last.
    std::uint32_t pid = __atomic_load_n(&stored.pid, __ATOMIC_ACQUIRE);
    if (pid == 0)
        return std::nullopt;
    mo_site_key key = stored;
    key.pid = pid;
    return key;
}

std::vector<std::pair<mo_live_key, mo_live_value>> BpfSession::read_live_allocations() const {
    return read_hash_map<mo_live_key, mo_live_value>(bpf_map__fd(skeleton_->maps.live),
                                                     bpf_map__max_entries(skeleton_->maps.live));
}

std::vector<std::uint64_t> BpfSession::read_stack(std::int32_t id) const {
    if (id < 0)
        return {};
    __u64 addresses[MO_MAX_STACK_DEPTH] = {};
    __u32 key = static_cast<__u32>(id);
    if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.stacks), &key, addresses) != 0)
        return {};
    std::vector<std::uint64_t> stack;
    for (auto address : addresses) {
        if (address == 0)
            break;
        stack.push_back(address);
    }
    return stack;
}

Drops BpfSession::read_drops() const {
    const auto* counts = skeleton_->bss->drops;
    Drops drops;
    drops.live_map_full = counts[MO_DROP_LIVE_MAP_FULL];
    drops.site_map_full = counts[MO_DROP_SITE_MAP_FULL];
    drops.stack_map_full = counts[MO_DROP_STACK_MAP_FULL];
    drops.stack_collisions = counts[MO_DROP_STACK_COLLISION];
    drops.stack_errors = counts[MO_DROP_STACK_OTHER];
    drops.allocator_calls_map_full = counts[MO_DROP_PENDING_MAP_FULL];
    drops.event_ring_full = counts[MO_DROP_EVENT_RING_FULL];
    drops.allocator_returns_lost = read_stat(MO_STAT_LOST_RETURNS);
    return drops;
}

std::uint64_t BpfSession::read_stat(mo_stat stat) const {
    // The kernel writes one value per possible CPU.
    static const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0)
        return 0;
    std::vector<std::uint64_t> counts(static_cast<std::size_t>(cpus));
    __u32 key = stat;
    if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.stats), &key, counts.data()) != 0)
        return 0;
    std::uint64_t total = 0;
    for (std::uint64_t count : counts)
        total += count;
    return total;
}

}  // namespace memobserve
