/* Fault layer: every page fault of a traced process, counted per site. */
#ifndef MEMOBSERVE_FAULT_BPF_H
#define MEMOBSERVE_FAULT_BPF_H

#include "common.bpf.h"
#include "alloc.bpf.h"

/* Kernel addresses start above this on x86-64 (47-bit user space). */
#define USER_SPACE_END 0x800000000000ULL

static __always_inline int count_fault(void *ctx, unsigned long address, struct pt_regs *regs)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct allocator_call *call;
	struct mo_site_counters *counters;
	struct mo_site_key site;

	if (address >= USER_SPACE_END || !is_target(tgid))
		return 0;

	/* A fault inside an allocator call (calloc clearing a block, malloc
	 * writing its headers) belongs to the allocator's caller. */
	call = enclosing_call(pid_tgid, BPF_CORE_READ(regs, sp));
	if (call)
		site = call->site;
	else
		current_site(ctx, tgid, &site);

	counters = site_counters(&site);
	if (counters) {
		/* NOTE: a fault that maps a transparent huge page brings in 2 MiB
		 * but counts as one base page here. */
		__sync_fetch_and_add(&counters->faulted_bytes, page_size);
		__sync_fetch_and_add(&counters->faults, 1);
	}
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(user_page_fault, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	return count_fault(ctx, address, regs);
}

/* The kernel touching user memory inside a system call (read() into a new
 * buffer, for example) faults in kernel mode on a user address. */
SEC("tp_btf/page_fault_kernel")
int BPF_PROG(kernel_page_fault, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	if (is_reading_user_memory())
		return 0;
	return count_fault(ctx, address, regs);
}

#endif /* MEMOBSERVE_FAULT_BPF_H */
