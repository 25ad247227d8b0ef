/* Allocator layer: entry and return uprobes on the malloc family and on C++
 * operator new. Userspace attaches these programs once per allocator file
 * (inode); the programs keep only the processes selected by is_target(). */
#ifndef MEMOBSERVE_ALLOC_BPF_H
#define MEMOBSERVE_ALLOC_BPF_H

#include "common.bpf.h"

/* libbpf 1.1 (Debian 12) has no BPF_UPROBE macros. BPF_KPROBE and BPF_KRETPROBE
 * read the same pt_regs registers, so they serve uprobes as well. */

/* An allocator call in progress on one thread. */
struct allocator_call {
	__u64 size;
	__u64 argument;    /* realloc: old block; posix_memalign: result pointer */
	__u64 entry_sp;    /* user stack pointer at entry, for nesting checks */
	struct mo_site_key site;
	__u32 kind;
	__u32 depth;       /* nested allocator calls inside this one */
};

/* Per thread: the outermost allocator call in progress, none while `kind` is
 * 0. The stack taken at its entry is reused by the mapping and fault programs
 * for what happens inside the call, because libc without frame pointers
 * breaks the walk there. Task storage instead of a hash map by thread id: a
 * lookup needs no hashing, and a call that ends frees nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct allocator_call);
} allocator_calls SEC(".maps");

/* The current thread's allocator call state; NULL when it has none yet. */
static __always_inline struct allocator_call *thread_call(__u64 flags)
{
	return bpf_task_storage_get(&allocator_calls, bpf_get_current_task_btf(), 0, flags);
}

/* Block -> size and site, for every live allocation. Sized by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 524288);
	__type(key, struct mo_live_key);
	__type(value, struct mo_live_value);
} live SEC(".maps");

/* Return the allocator call that the current thread is inside, if `sp` lies
 * within it. The same stack pointer counts as inside: glibc's calloc ends by
 * jumping to memset, which then runs on calloc's frame. A call whose frame is
 * gone (an operator new that threw, so its return probe never ran) is
 * deleted. */
static __always_inline struct allocator_call *enclosing_call(__u64 sp)
{
	struct allocator_call *call = thread_call(0);

	if (!call || !call->kind)
		return NULL;
	if (sp <= call->entry_sp)
		return call;
	count_stat(MO_STAT_LOST_RETURNS);
	call->kind = 0;
	return NULL;
}

/* Whether an allocator entry at stack pointer `sp` runs inside `outer`. A
 * deeper stack means a call from inside. The same stack pointer means either a
 * tail call (realloc jumping to malloc) or a new call after `outer` returned
 * unseen. In a tail call the return address slot already contains the kernel's
 * uretprobe trampoline, so it no longer matches the caller `outer` saw. */
static __always_inline bool is_nested(struct allocator_call *outer, __u64 sp)
{
	if (sp < outer->entry_sp)
		return true;
	if (sp > outer->entry_sp)
		return false;
	return read_stack_top(sp) != outer->site.caller;
}

static __always_inline void record_allocation(struct allocator_call *call, __u64 address)
{
	__u32 slot = site_slot(&call->site);
	struct mo_site_counters *counters = slot_counters(slot);
	struct mo_live_key key = { .pid = call->site.pid, .address = address };
	struct mo_live_value value = { .size = call->size, .site_slot = slot };

	if (!counters)
		return;
	__sync_fetch_and_add(&counters->allocated_bytes, call->size);
	__sync_fetch_and_add(&counters->allocations, 1);
	if (bpf_map_update_elem(&live, &key, &value, BPF_ANY))
		count_drop(MO_DROP_LIVE_MAP_FULL);
	else
		count_stat(MO_STAT_LIVE_CHANGES);
}

static __always_inline void record_failure(struct allocator_call *call)
{
	struct mo_site_counters *counters = site_counters(&call->site);

	if (counters)
		__sync_fetch_and_add(&counters->failed_allocations, 1);
}

static __always_inline void record_free(__u32 tgid, __u64 address)
{
	struct mo_live_key key = { .pid = tgid, .address = address };
	struct mo_live_value *block = bpf_map_lookup_elem(&live, &key);
	struct mo_site_counters *counters;

	if (!block) {
		count_stat(MO_STAT_UNTRACKED_FREES);
		return;
	}
	counters = slot_counters(block->site_slot);
	if (counters) {
		__sync_fetch_and_add(&counters->freed_bytes, block->size);
		__sync_fetch_and_add(&counters->frees, 1);
	}
	bpf_map_delete_elem(&live, &key);
	count_stat(MO_STAT_LIVE_CHANGES);
}

static __always_inline int enter_allocator(struct pt_regs *ctx, __u32 kind, __u64 size,
					   __u64 argument)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 sp = PT_REGS_SP(ctx);
	struct allocator_call *call;

	if (!is_target(tgid))
		return 0;
	count_stat(MO_STAT_ALLOC_PROBE_HITS);

	call = thread_call(BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!call) {
		count_drop(MO_DROP_PENDING_MAP_FULL);
		return 0;
	}
	/* glibc's realloc(NULL, n) jumps to malloc, and operator new calls malloc:
	 * only the outermost call records. */
	if (call->kind && is_nested(call, sp)) {
		call->depth++;
		return 0;
	}
	if (call->kind)
		count_stat(MO_STAT_LOST_RETURNS);

	call->kind = 0;
	call->size = size;
	call->argument = argument;
	call->entry_sp = sp;
	call->depth = 0;
	current_site(tgid, &call->site);
	/* The frame-pointer walk starts at the caller's saved frame, so it skips
	 * the caller itself; its return address is on top of the stack here.
	 * Without a stored stack it still names the caller. */
	call->site.caller = read_stack_top(sp);
	call->kind = kind;
	return 0;
}

static __always_inline int enter_free(struct pt_regs *ctx, __u64 block)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!block || !is_target(tgid))
		return 0;
	count_stat(MO_STAT_ALLOC_PROBE_HITS);

	/* glibc's realloc(p, 0) calls free: the realloc return records it. */
	if (enclosing_call(PT_REGS_SP(ctx)))
		return 0;
	record_free(tgid, block);
	return 0;
}

/* One entry program for every allocator function. Each probe's cookie is
 * the function's kind, so that one link per file carries the entry probes. */
SEC("uprobe")
int BPF_KPROBE(allocator_enter, __u64 first, __u64 second, __u64 third)
{
	__u64 kind = bpf_get_attach_cookie(ctx);

	switch (kind) {
	case MO_ALLOC_MALLOC:
	case MO_ALLOC_VALLOC:
	case MO_ALLOC_OPERATOR_NEW:
		return enter_allocator(ctx, kind, first, 0);
	case MO_ALLOC_CALLOC:
		return enter_allocator(ctx, kind, first * second, 0);
	case MO_ALLOC_REALLOC:
		return enter_allocator(ctx, kind, second, first);
	case MO_ALLOC_REALLOCARRAY:
		return enter_allocator(ctx, kind, second * third, first);
	case MO_ALLOC_POSIX_MEMALIGN:
		return enter_allocator(ctx, kind, third, first);
	case MO_ALLOC_ALIGNED_ALLOC:
	case MO_ALLOC_MEMALIGN:
		return enter_allocator(ctx, kind, second, 0);
	case MO_ALLOC_PVALLOC:
		/* pvalloc rounds the request up to whole pages. */
		return enter_allocator(ctx, kind, (first + page_size - 1) & ~(page_size - 1), 0);
	case MO_ALLOC_FREE:
		return enter_free(ctx, first);
	}
	return 0;
}

/* One return program for every allocator entry point above. */
SEC("uretprobe")
int BPF_KRETPROBE(allocator_return, __u64 result)
{
	struct allocator_call *pending;
	struct allocator_call call;
	__u64 address = result;

	pending = thread_call(0);
	if (!pending || !pending->kind)
		return 0;
	count_stat(MO_STAT_ALLOC_PROBE_HITS);
	if (pending->depth > 0) {
		pending->depth--;
		return 0;
	}
	call = *pending;
	pending->kind = 0;
	count_stat(MO_STAT_ALLOC_RETURNS);

	switch (call.kind) {
	case MO_ALLOC_REALLOC:
	case MO_ALLOC_REALLOCARRAY:
		if (call.argument && call.size == 0) {
			/* realloc(p, 0) frees p (glibc returns NULL). */
			record_free(call.site.pid, call.argument);
			return 0;
		}
		if (!result) {
			record_failure(&call);
			return 0;
		}
		if (call.argument)
			record_free(call.site.pid, call.argument);
		break;
	case MO_ALLOC_POSIX_MEMALIGN:
		/* Returns 0 or an error number; the block is written to *result. */
		if (result != 0 ||
		    bpf_probe_read_user(&address, sizeof(address), (void *)call.argument)) {
			record_failure(&call);
			return 0;
		}
		break;
	default:
		if (!result) {
			record_failure(&call);
			return 0;
		}
		break;
	}
	record_allocation(&call, address);
	return 0;
}

/* A probe inside __libc_start_main, which every new process runs once before
 * main. Linux (seen on 6.18) loses the return probe of a process's first
 * probed call when no probe has yet been single-stepped in that process: it
 * creates the area for single steps and return trampolines only then. The
 * allocators start with pushes, which the kernel emulates instead, so this
 * probe sits on the first instruction that is not a push. */
SEC("uprobe")
int process_start(void *ctx)
{
	return 0;
}

#endif /* MEMOBSERVE_ALLOC_BPF_H */
