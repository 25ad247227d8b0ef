/* Task layer: follow forked children and tell userspace about exec and exit. */
#ifndef MEMOBSERVE_TASK_BPF_H
#define MEMOBSERVE_TASK_BPF_H

#include "common.bpf.h"

static __always_inline void send_task_event(__u32 type, __u32 pid, __u32 parent)
{
	struct mo_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);

	if (!event) {
		count_drop(MO_DROP_EVENT_RING_FULL);
		return;
	}
	__builtin_memset(event, 0, sizeof(*event));
	event->type = type;
	event->pid = pid;
	event->old_address = parent;
	event->timestamp_ns = bpf_ktime_get_ns();
	if (type == MO_EVENT_EXEC)
		bpf_get_current_comm(event->comm, sizeof(event->comm));
	bpf_ringbuf_submit(event, 0);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = parent->tgid;
	__u32 child_tgid = child->tgid;
	__u8 one = 1;

	/* A new thread shares its parent's tgid and is already traced. */
	if (child_tgid == parent_tgid || !is_target(parent_tgid))
		return 0;
	if (filter_mode == MO_FILTER_PIDS) {
		if (!follow_children)
			return 0;
		bpf_map_update_elem(&targets, &child_tgid, &one, BPF_ANY);
	}
	send_task_event(MO_EVENT_FORK, child_tgid, parent_tgid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(process_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	if (!is_target(task->tgid))
		return 0;
	send_task_event(MO_EVENT_EXEC, task->tgid, 0);
	/* The program and its loader, mapped by the kernel. */
	send_code_mappings(task->tgid, 0, ~0ULL);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit, struct task_struct *task)
{
	__u32 tgid = task->tgid;

	/* Only the end of the whole process, not of one of its threads. */
	if (task->pid != tgid || !is_target(tgid))
		return 0;
	send_task_event(MO_EVENT_EXIT, tgid, 0);
	return 0;
}

#endif /* MEMOBSERVE_TASK_BPF_H */
