/* Fault layer: every page fault of a traced process, counted per site.
 *
 * Taking a user stack costs about half as much as the fault itself, so by
 * default a stack is taken once per fault_sample_bytes faulted in a process:
 * the faults in between wait at the process's residue site, and the fault
 * that reaches the period takes them to its own stack's site. Totals stay
 * exact; per site, faulted bytes are a sample weighted by bytes. */
#ifndef MEMOBSERVE_FAULT_BPF_H
#define MEMOBSERVE_FAULT_BPF_H

#include "common.bpf.h"
#include "alloc.bpf.h"

/* NOTE: a fault that maps a transparent huge page brings in 2 MiB but
 * counts as one base page here. */
static __always_inline void add_faults(struct mo_site_key *site, __u64 bytes, __u64 faults)
{
	struct mo_site_counters *counters = site_counters(site);

	if (counters) {
		__sync_fetch_and_add(&counters->faulted_bytes, bytes);
		__sync_fetch_and_add(&counters->faults, faults);
	}
}

static __always_inline int count_fault(unsigned long address, struct pt_regs *regs)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct allocator_call *call;
	struct mo_site_counters *residue;
	struct mo_site_key residue_key;
	struct mo_site_key site;
	__u64 bytes, faults;

	if (address >= USER_SPACE_END || !is_target(tgid))
		return 0;

	/* A fault inside an allocator call (calloc clearing a block, malloc
	 * writing its headers) belongs to the allocator's caller, whose stack
	 * is known already. */
	call = enclosing_call(regs->sp);
	if (call) {
		site = call->site;
		add_faults(&site, page_size, 1);
		return 0;
	}
	if (fault_sample_bytes == 0) {
		current_site(tgid, &site);
		add_faults(&site, page_size, 1);
		return 0;
	}

	residue_key.pid = tgid;
	residue_key.stack_id = MO_FAULT_RESIDUE_STACK_ID;
	residue_key.caller = 0;
	residue = site_counters(&residue_key);
	if (!residue)
		return 0;
	__sync_fetch_and_add(&residue->faults, 1);
	if (__sync_add_and_fetch(&residue->faulted_bytes, page_size) < fault_sample_bytes)
		return 0;
	/* Another thread may have taken the bytes in between: take what is left. */
	bytes = __sync_lock_test_and_set(&residue->faulted_bytes, 0);
	faults = __sync_lock_test_and_set(&residue->faults, 0);
	current_site(tgid, &site);
	add_faults(&site, bytes, faults);
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(user_page_fault, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	return count_fault(address, regs);
}

/* The kernel touching user memory inside a system call (read() into a new
 * buffer, for example) faults in kernel mode on a user address. */
SEC("tp_btf/page_fault_kernel")
int BPF_PROG(kernel_page_fault, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	if (is_reading_user_memory())
		return 0;
	return count_fault(address, regs);
}

#endif /* MEMOBSERVE_FAULT_BPF_H */
