/* Address-space layer: mmap, munmap, mremap, brk and madvise, from the raw
 * syscall tracepoints (no tracefs needed). Each completed call becomes one
 * ring-buffer event; userspace keeps the mappings per site. */
#ifndef MEMOBSERVE_VM_BPF_H
#define MEMOBSERVE_VM_BPF_H

#include "common.bpf.h"
#include "alloc.bpf.h"

/* x86-64 system call numbers. */
#define NR_MMAP 9
#define NR_MUNMAP 11
#define NR_BRK 12
#define NR_MREMAP 25
#define NR_MADVISE 28

#define MADV_DONTNEED 4
#define MADV_FREE 8
#define MADV_REMOVE 9

#define PROT_EXEC 0x4

/* Queued event bytes past which an address-space event wakes userspace. */
#define RING_WAKEUP_BYTES (1 << 20)

/* pid_tgid -> arguments of the address-space call in progress. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u64);
	__type(value, struct mo_event);
} vm_calls SEC(".maps");

static __always_inline bool is_vm_syscall(long id)
{
	return id == NR_MMAP || id == NR_MUNMAP || id == NR_BRK || id == NR_MREMAP ||
	       id == NR_MADVISE;
}

/* The site of an address-space call: the enclosing allocator call's site when
 * there is one, else the current stack plus the return address on top of the
 * user stack. glibc's syscall wrappers (mmap64, munmap, ...) push nothing, so
 * that word is their caller, which the frame-pointer walk skips. */
static __always_inline void vm_call_site(__u64 pid_tgid, struct pt_regs *regs,
					 struct mo_site_key *site)
{
	__u64 sp = regs->sp;
	struct allocator_call *call = enclosing_call(sp);

	if (call) {
		*site = call->site;
		return;
	}
	current_site(pid_tgid >> 32, site);
	site->caller = read_stack_top(sp);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(vm_syscall_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid;
	struct mo_event call = {};

	if (!is_vm_syscall(id))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (!is_target(pid_tgid >> 32))
		return 0;

	call.pid = pid_tgid >> 32;
	call.timestamp_ns = bpf_ktime_get_ns();
	switch (id) {
	case NR_MMAP:
		call.type = MO_EVENT_MMAP;
		call.length = regs->si;
		call.prot = regs->dx;
		call.flags = regs->r10;
		call.fd = (__s64)regs->r8;
		break;
	case NR_MUNMAP:
		call.type = MO_EVENT_MUNMAP;
		call.address = regs->di;
		call.length = regs->si;
		break;
	case NR_MREMAP:
		call.type = MO_EVENT_MREMAP;
		call.old_address = regs->di;
		call.old_length = regs->si;
		call.length = regs->dx;
		break;
	case NR_BRK: {
		struct task_struct *task = bpf_get_current_task_btf();

		call.type = MO_EVENT_BRK;
		call.old_address = BPF_CORE_READ(task, mm, brk);
		break;
	}
	case NR_MADVISE:
		call.type = MO_EVENT_MADVISE;
		call.address = regs->di;
		call.length = regs->si;
		call.flags = regs->dx;
		if (call.flags != MADV_DONTNEED && call.flags != MADV_FREE &&
		    call.flags != MADV_REMOVE)
			return 0;
		break;
	}
	vm_call_site(pid_tgid, regs, &call.site);
	bpf_map_update_elem(&vm_calls, &pid_tgid, &call, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(vm_syscall_exit, struct pt_regs *regs, long result)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct mo_event *call;
	struct mo_event *event;
	bool failed;

	/* Every system call of the host ends here: leave the others before
	 * any map lookup. */
	if (!is_vm_syscall(regs->orig_ax))
		return 0;
	call = bpf_map_lookup_elem(&vm_calls, &pid_tgid);
	if (!call)
		return 0;

	/* Negative error numbers come back as results in [-4095, -1]. */
	failed = result < 0 && result >= -4095;
	if (call->type == MO_EVENT_BRK) {
		call->address = result;
		failed = call->address == call->old_address;
	} else if (call->type == MO_EVENT_MMAP || call->type == MO_EVENT_MREMAP) {
		call->address = result;
	}
	if (failed) {
		bpf_map_delete_elem(&vm_calls, &pid_tgid);
		return 0;
	}

	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count_drop(MO_DROP_EVENT_RING_FULL);
	} else {
		__builtin_memcpy(event, call, sizeof(*event));
		/* Userspace reads these every 100 ms at most. Waking it on each
		 * costs the target an interrupt per call, so only a quarter-full
		 * ring wakes it. */
		bpf_ringbuf_submit(event, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > RING_WAKEUP_BYTES
						  ? BPF_RB_FORCE_WAKEUP
						  : BPF_RB_NO_WAKEUP);
	}
	/* A library the loader maps: its code, for the symbolizer. */
	if (call->type == MO_EVENT_MMAP && (call->prot & PROT_EXEC) && call->fd >= 0)
		send_code_mappings(pid_tgid >> 32, call->address, call->address + call->length);
	bpf_map_delete_elem(&vm_calls, &pid_tgid);
	return 0;
}

#endif /* MEMOBSERVE_VM_BPF_H */
