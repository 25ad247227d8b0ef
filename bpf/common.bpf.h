/* Maps, settings and helpers shared by every layer of memobserve's BPF side. */
#ifndef MEMOBSERVE_COMMON_BPF_H
#define MEMOBSERVE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "memobserve/abi.h"

#define EEXIST 17
#define ENOMEM 12
#define E2BIG 7

/* Walk a task's mappings (kernel 6.7 and later). */
extern int bpf_iter_task_vma_new(struct bpf_iter_task_vma *it, struct task_struct *task,
				 __u64 address) __ksym;
extern struct vm_area_struct *bpf_iter_task_vma_next(struct bpf_iter_task_vma *it) __ksym;
extern void bpf_iter_task_vma_destroy(struct bpf_iter_task_vma *it) __ksym;

#define VM_EXEC 0x4

/* Kernel addresses start above this on x86-64 (47-bit user space). */
#define USER_SPACE_END 0x800000000000ULL

/* Set by the loader between open and load. */
const volatile __u32 filter_mode = MO_FILTER_PIDS;
const volatile bool follow_children = true;
const volatile __u64 page_size = 4096;
/* MO_FILTER_CGROUP: the cgroup v2 id and its depth below the root (level 0). */
const volatile __u64 target_cgroup_id = 0;
const volatile __u32 target_cgroup_level = 0;
/* Bytes faulted per process between two user stacks of the fault layer;
 * 0 takes a stack on every fault. */
const volatile __u64 fault_sample_bytes = 0;
/* MO_FILTER_ALL: memobserve's own process, left out. */
const volatile __u32 self_tgid = 0;

/* Losses, read by userspace through the skeleton. */
__u64 drops[MO_DROP_COUNT] = {};

/* Counters that are not losses, one set per CPU: a pair of malloc and free
 * adds to them five times, and threads on several CPUs would otherwise
 * contend for one cache line. Userspace sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MO_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* tgid -> 1 for every traced process. Written by userspace at start and by the
 * fork program when following children. Sized by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

/* A user stack as the frame-pointer walk found it: the probed instruction,
 * then one return address per frame. Frames past the last are undefined; the
 * first 0 ends the stack when it has fewer than MO_MAX_STACK_DEPTH frames. */
struct user_stack {
	__u64 frames[MO_MAX_STACK_DEPTH];
};

/* User stacks by id, the id being a hash of the frames. A stack whose id is
 * taken by another stack is not stored (a collision), so that no site ever
 * changes stack. Sized by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct user_stack);
} stacks SEC(".maps");

/* Where each CPU walks a stack before storing it: too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct user_stack);
} stack_scratch SEC(".maps");

/* Sites live in slots of two arrays that userspace maps into its memory:
 * it reads every site's key and counters without a system call and without
 * walking hash buckets. A slot is taken once and kept; the hash below finds
 * a site's slot. The three maps are sized alike by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mo_site_key);
	__type(value, __u32);
} site_slots SEC(".maps");

/* The key of each slot. Its pid is written last, so a slot whose pid is 0
 * contains no site yet (or never: a slot lost to a race stays empty). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct mo_site_key);
} site_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct mo_site_counters);
} site_counters_by_slot SEC(".maps");

/* Slots handed out so far; userspace reads the slots below it. */
__u32 sites_used = 0;

/* Rare events for userspace: address-space changes and process lifetime. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* One flag per CPU, set while a program reads user memory. A frame-pointer
 * walk that follows a bad pointer faults in kernel mode on a user address, and
 * the kernel fault program must not count those faults as the target's. BPF
 * programs run with migration disabled, so the flag stays on this CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} reading_user_memory SEC(".maps");

static __always_inline void set_reading_user_memory(__u32 value)
{
	__u32 zero = 0;
	__u32 *flag = bpf_map_lookup_elem(&reading_user_memory, &zero);

	if (flag)
		*flag = value;
}

static __always_inline bool is_reading_user_memory(void)
{
	__u32 zero = 0;
	__u32 *flag = bpf_map_lookup_elem(&reading_user_memory, &zero);

	return flag && *flag;
}

/* Read the word at the top of the user stack: the return address at a
 * function's first instruction, and in a wrapper that pushes nothing. */
static __always_inline __u64 read_stack_top(__u64 sp)
{
	__u64 word = 0;

	set_reading_user_memory(1);
	if (bpf_probe_read_user(&word, sizeof(word), (void *)sp))
		word = 0;
	set_reading_user_memory(0);
	return word;
}

static __always_inline void count_drop(enum mo_drop kind)
{
	if (kind < MO_DROP_COUNT)
		__sync_fetch_and_add(&drops[kind], 1);
}

/* Send the executable file mappings of the current process that overlap
 * [start, end), so that userspace can symbolize its stacks even when the
 * process is gone before /proc/PID/maps is read. */
static __always_inline void send_code_mappings(__u32 tgid, __u64 start, __u64 end)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct bpf_iter_task_vma it;
	struct vm_area_struct *vma;

	bpf_iter_task_vma_new(&it, task, start);
	while ((vma = bpf_iter_task_vma_next(&it))) {
		struct mo_event *event;
		struct file *file;
		struct inode *inode;

		if (vma->vm_start >= end)
			break;
		file = vma->vm_file;
		if (!(vma->vm_flags & VM_EXEC) || !file)
			continue;
		event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
		if (!event) {
			count_drop(MO_DROP_EVENT_RING_FULL);
			break;
		}
		__builtin_memset(event, 0, sizeof(*event));
		inode = BPF_CORE_READ(file, f_inode);
		event->type = MO_EVENT_CODE_MAPPING;
		event->pid = tgid;
		event->address = vma->vm_start;
		event->length = vma->vm_end - vma->vm_start;
		event->old_address = vma->vm_pgoff * page_size;
		event->inode = BPF_CORE_READ(inode, i_ino);
		event->device = BPF_CORE_READ(inode, i_sb, s_dev);
		event->timestamp_ns = bpf_ktime_get_ns();
		bpf_ringbuf_submit(event, 0);
	}
	bpf_iter_task_vma_destroy(&it);
}

static __always_inline void count_stat(enum mo_stat kind)
{
	__u32 key = kind;
	__u64 *count = bpf_map_lookup_elem(&stats, &key);

	/* Atomic even per CPU, because a program can run nested in another on
	 * the same CPU (the fault program, when a read of user memory faults). */
	if (count)
		__sync_fetch_and_add(count, 1);
}

/* Whether `tgid`, the current process, is traced. In cgroup mode the current
 * task's cgroup decides: its ancestor at the target's level is the target
 * when the task is in the target cgroup or below it. */
static __always_inline bool is_target(__u32 tgid)
{
	if (filter_mode == MO_FILTER_ALL)
		return tgid != self_tgid;
	if (filter_mode == MO_FILTER_CGROUP)
		return bpf_get_current_ancestor_cgroup_id(target_cgroup_level) == target_cgroup_id;
	return bpf_map_lookup_elem(&targets, &tgid) != NULL;
}

/* One frame record as the x86-64 frame-pointer convention lays it out. */
struct frame_record {
	__u64 next;
	__u64 return_address;
};

/* Walk the current thread's user frame pointers into `stack` and return the
 * number of frames. The kernel's own walk (bpf_get_stackid) reads the record
 * at the outermost frame pointer, which is 0: on Linux 6.18 every walk of a
 * complete stack ended in a page fault (seen with bpftrace on
 * exceptions:page_fault_kernel). This one stops at 0, and at any frame
 * pointer that does not lie above the previous one, before reading it. */
static __always_inline __u32 walk_user_stack(struct user_stack *stack)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	__u64 frame = regs->bp;
	__u64 below = regs->sp;
	__u32 count = 1;

	stack->frames[0] = regs->ip;
	set_reading_user_memory(1);
	for (__u32 i = 1; i < MO_MAX_STACK_DEPTH; i++) {
		struct frame_record record;

		if (frame < below || (frame & 7) || frame >= USER_SPACE_END)
			break;
		/* A return address outside user space is data, not a frame:
		 * the chain has left the stack (into the environment strings
		 * above it, for one). */
		if (bpf_probe_read_user(&record, sizeof(record), (void *)frame) ||
		    record.return_address == 0 || record.return_address >= USER_SPACE_END)
			break;
		stack->frames[i] = record.return_address;
		count = i + 1;
		below = frame + sizeof(record);
		frame = record.next;
	}
	set_reading_user_memory(0);
	if (count < MO_MAX_STACK_DEPTH)
		stack->frames[count] = 0;
	return count;
}

/* Id of a stack of `count` frames: a hash of its frames, never negative
 * (negative ids name the unknown-stack and fault-residue sites). Each frame
 * goes through a multiply and a shift, so that every bit of every frame
 * moves every bit of the result (the finalizer of MurmurHash3's 64-bit
 * variant, applied per frame). */
static __always_inline __u32 stack_hash(const struct user_stack *stack, __u32 count)
{
	__u64 hash = count;

	for (__u32 i = 0; i < MO_MAX_STACK_DEPTH; i++) {
		if (i >= count)
			break;
		hash ^= stack->frames[i];
		hash ^= hash >> 33;
		hash *= 0xff51afd7ed558ccdULL;
		hash ^= hash >> 33;
		hash *= 0xc4ceb9fe1a85ec53ULL;
		hash ^= hash >> 33;
	}
	return (__u32)hash & 0x7fffffff;
}

static __always_inline bool same_stack(const struct user_stack *stored,
				       const struct user_stack *stack, __u32 count)
{
	for (__u32 i = 0; i < MO_MAX_STACK_DEPTH; i++) {
		if (i >= count)
			return stored->frames[i] == 0;
		if (stored->frames[i] != stack->frames[i])
			return false;
	}
	return true;
}

/* Ids tried for one stack: its hash and the ids after it. With 10000
 * stacks, two share a 31-bit hash in about one run of forty (an estimate by
 * the birthday bound). The second stack then takes the next free id. */
#define STACK_ID_TRIES 4
#define STACK_ID_TAKEN (-100)

/* Find or store the stack of `count` frames at `id`. Returns `id`,
 * STACK_ID_TAKEN when a different stack is stored there, or
 * MO_UNKNOWN_STACK_ID with the reason counted as a drop. It is a global
 * function, so the verifier checks it once instead of once per try in every
 * program. */
__noinline int store_stack_at(struct user_stack *stack, __u32 count, __u32 id)
{
	struct user_stack *stored;
	long error;

	if (!stack)
		return MO_UNKNOWN_STACK_ID;
	stored = bpf_map_lookup_elem(&stacks, &id);
	if (!stored) {
		error = bpf_map_update_elem(&stacks, &id, stack, BPF_NOEXIST);
		if (error == 0)
			return id;
		if (error != -EEXIST) {
			count_drop(error == -E2BIG || error == -ENOMEM ? MO_DROP_STACK_MAP_FULL
								   : MO_DROP_STACK_OTHER);
			return MO_UNKNOWN_STACK_ID;
		}
		/* Another CPU stored a stack under this id in between. */
		stored = bpf_map_lookup_elem(&stacks, &id);
	}
	if (stored && same_stack(stored, stack, count))
		return id;
	return STACK_ID_TAKEN;
}

/* Store the current user stack and return its id, or MO_UNKNOWN_STACK_ID
 * with the reason counted as a drop. Stacks are never deleted, so a stack
 * found at none of its ids is not stored yet. */
static __always_inline __s32 current_stack_id(void)
{
	__u32 zero = 0;
	struct user_stack *stack = bpf_map_lookup_elem(&stack_scratch, &zero);
	__u32 count, id;
	int result;

	if (!stack) {
		count_drop(MO_DROP_STACK_OTHER);
		return MO_UNKNOWN_STACK_ID;
	}
	count = walk_user_stack(stack);
	id = stack_hash(stack, count);
	for (__u32 try = 0; try < STACK_ID_TRIES; try++) {
		result = store_stack_at(stack, count, (id + try) & 0x7fffffff);
		if (result != STACK_ID_TAKEN)
			return result;
	}
	count_drop(MO_DROP_STACK_COLLISION);
	return MO_UNKNOWN_STACK_ID;
}

/* Fill `key` with the current user stack. A stack the map cannot store goes
 * to the unknown-stack site of the process, never to another stack's id. */
static __always_inline void current_site(__u32 tgid, struct mo_site_key *key)
{
	key->pid = tgid;
	key->stack_id = current_stack_id();
	key->caller = 0;
}

#define MO_NO_SLOT 0xffffffffU

/* The slot of `key`, taken on first use; MO_NO_SLOT when every slot is
 * taken (counted as a drop). */
static __always_inline __u32 site_slot(const struct mo_site_key *key)
{
	struct mo_site_key *stored;
	__u32 *found = bpf_map_lookup_elem(&site_slots, key);
	__u32 slot;

	if (found)
		return *found;
	slot = __sync_fetch_and_add(&sites_used, 1);
	stored = bpf_map_lookup_elem(&site_keys, &slot);
	if (!stored) {
		count_drop(MO_DROP_SITE_MAP_FULL);
		return MO_NO_SLOT;
	}
	if (bpf_map_update_elem(&site_slots, key, &slot, BPF_NOEXIST) == 0) {
		stored->stack_id = key->stack_id;
		stored->caller = key->caller;
		/* The pid last: userspace takes a slot with a pid as complete. */
		asm volatile("" ::: "memory");
		*(volatile __u32 *)&stored->pid = key->pid;
		return slot;
	}
	/* Another CPU took a slot for the same site first; this one stays empty. */
	found = bpf_map_lookup_elem(&site_slots, key);
	if (found)
		return *found;
	count_drop(MO_DROP_SITE_MAP_FULL);
	return MO_NO_SLOT;
}

static __always_inline struct mo_site_counters *slot_counters(__u32 slot)
{
	return bpf_map_lookup_elem(&site_counters_by_slot, &slot);
}

/* Return the counters of `key`, creating them on first use; NULL when the
 * site arrays are full (counted as a drop). */
static __always_inline struct mo_site_counters *site_counters(const struct mo_site_key *key)
{
	__u32 slot = site_slot(key);

	return slot == MO_NO_SLOT ? NULL : slot_counters(slot);
}

#endif /* MEMOBSERVE_COMMON_BPF_H */
