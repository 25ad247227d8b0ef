/* Types shared by the BPF programs and the userspace loader.
 *
 * Both sides compile this header: the BPF side with vmlinux.h, userspace with
 * <linux/types.h>. Every struct has fixed-width fields and explicit padding, so
 * its layout is the same for both compilers. The C++ side checks the sizes with
 * static_assert.
 */
#ifndef MEMOBSERVE_ABI_H
#define MEMOBSERVE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Deepest user stack recorded, in frames. */
#define MO_MAX_STACK_DEPTH 64

/* Stack id of a site whose stack could not be stored (see enum mo_drop). */
#define MO_UNKNOWN_STACK_ID (-1)

/* Stack id of a process's fault bytes since its last sampled stack. When they
 * reach the sampling period, the next fault's stack takes them all. */
#define MO_FAULT_RESIDUE_STACK_ID (-2)

/* Process filter of the BPF programs. */
enum mo_filter_mode {
	MO_FILTER_PIDS = 0, /* tgids present in the targets map */
	MO_FILTER_ALL = 1,  /* every process but memobserve */
	MO_FILTER_CGROUP = 2, /* processes in a cgroup v2 and its descendants */
};

/* Allocator entry points with probes; each entry probe's BPF cookie. The kind
 * travels from the entry probe to the return probe so that one return program
 * serves every function. */
enum mo_alloc_kind {
	MO_ALLOC_MALLOC = 1,
	MO_ALLOC_CALLOC,
	MO_ALLOC_REALLOC,
	MO_ALLOC_REALLOCARRAY,
	MO_ALLOC_POSIX_MEMALIGN,
	MO_ALLOC_ALIGNED_ALLOC,
	MO_ALLOC_MEMALIGN,
	MO_ALLOC_VALLOC,
	MO_ALLOC_PVALLOC,
	MO_ALLOC_OPERATOR_NEW,
	MO_ALLOC_FREE, /* no return probe */
};

/* Identity of an allocation site: one process and one user stack. `caller` is a
 * return address the frame-pointer walk cannot see (read from the top of the
 * user stack inside a libc syscall wrapper); 0 when the walk is complete. */
struct mo_site_key {
	__u32 pid;
	__s32 stack_id;
	__u64 caller;
};

/* Counters per site, updated atomically by every CPU. */
struct mo_site_counters {
	__u64 allocated_bytes;
	__u64 allocations;
	__u64 freed_bytes;
	__u64 frees;
	__u64 failed_allocations;
	__u64 faulted_bytes;
	__u64 faults;
};

/* Key of the live-allocation map: one allocated block of one process. */
struct mo_live_key {
	__u32 pid;
	__u32 pad;
	__u64 address;
};

/* A live block: its size and the slot of its site in the site arrays. */
struct mo_live_value {
	__u64 size;
	__u32 site_slot;
	__u32 pad;
};

/* Losses. Each index counts events that could not be recorded, so that the
 * user sees them instead of numbers that are silently too small. */
enum mo_drop {
	MO_DROP_LIVE_MAP_FULL = 0,   /* allocation not tracked: live map full */
	MO_DROP_SITE_MAP_FULL,       /* counter update lost: site map full */
	MO_DROP_STACK_MAP_FULL,      /* stack not stored (-ENOMEM): unknown-stack site */
	MO_DROP_STACK_COLLISION,     /* stack not stored (-EEXIST): unknown-stack site */
	MO_DROP_STACK_OTHER,         /* stack not stored, other error: unknown-stack site */
	MO_DROP_PENDING_MAP_FULL,    /* allocator call not tracked: no per-thread state */
	MO_DROP_EVENT_RING_FULL,     /* mapping event lost: ring buffer full */
	MO_DROP_COUNT,
};

/* Counters that are not losses. */
enum mo_stat {
	MO_STAT_ALLOC_PROBE_HITS = 0, /* allocator entry and return probes that ran */
	MO_STAT_UNTRACKED_FREES,      /* free of a block allocated before attaching */
	MO_STAT_ALLOC_RETURNS,        /* return probes that completed an allocator call */
	MO_STAT_LOST_RETURNS,         /* allocator calls whose return probe never ran */
	MO_STAT_LIVE_CHANGES,         /* blocks added to or removed from the live map */
	MO_STAT_COUNT,
};

/* Records on the ring buffer: address-space changes and process lifetime. */
enum mo_event_type {
	MO_EVENT_MMAP = 1,
	MO_EVENT_MUNMAP,
	MO_EVENT_MREMAP,
	MO_EVENT_BRK,
	MO_EVENT_MADVISE,
	MO_EVENT_FORK,
	MO_EVENT_EXEC,
	MO_EVENT_EXIT,
	MO_EVENT_CODE_MAPPING,
};

/* One ring-buffer record. Field use by type:
 *   MMAP:    address, length, prot, flags, fd
 *   MUNMAP:  address, length
 *   MREMAP:  old_address, old_length -> address, length
 *   BRK:     old_address (old break) -> address (new break)
 *   MADVISE: address, length, flags (advice)
 *   FORK:    pid is the child, old_address is the parent pid
 *   EXEC:    pid, comm (the new program's name)
 *   EXIT:    pid only
 *   CODE_MAPPING: an executable file mapping, sent after exec for each one
 *            and after each mmap that maps code: address (start), length,
 *            old_address (offset in the file), device (the kernel's
 *            encoding: major << 20 | minor), inode */
struct mo_event {
	__u32 type;
	__u32 pid;
	struct mo_site_key site;
	__u64 address;
	__u64 length;
	__u64 old_address;
	__u64 old_length;
	__u32 prot;
	__u32 flags;
	__s64 fd;
	__u64 timestamp_ns;
	char comm[16];
	__u64 inode;
	__u32 device;
	__u32 pad;
};

#endif /* MEMOBSERVE_ABI_H */
