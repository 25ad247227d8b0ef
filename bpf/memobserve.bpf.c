// SPDX-License-Identifier: GPL-2.0
/* memobserve's BPF programs, one layer per header. One object, so that the
 * layers share the target filter, the stack map and the site counters. */
#include "common.bpf.h"
#include "alloc.bpf.h"
#include "vm.bpf.h"
#include "fault.bpf.h"
#include "task.bpf.h"

char LICENSE[] SEC("license") = "GPL";
