// Placement of allocator probes. Under a uprobe the kernel emulates a few
// kinds of instructions (push of a register, relative jumps and calls) and
// single-steps the others out of line. Measured here with tracefs uprobe
// events on glibc's malloc and free: about 0.4 µs per emulated hit, 16 µs per
// single-stepped one. glibc's free starts with `test %rdi,%rdi`, then `je`,
// and a probe on the `je` reads the same arguments and stack pointer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace memobserve {

// Bytes from the start of the x86-64 function in `code` to its first
// instruction that the kernel emulates, when only straight-line instructions
// that write neither memory, nor the stack or frame pointer, nor the first
// `arguments` argument registers (rdi, rsi, rdx, rcx) come before it, at
// most twelve. `arguments` is how many of them the entry program reads. 0
// when there is no such instruction: the probe stays on the entry.
std::uint64_t emulated_probe_offset(const std::uint8_t* code, std::size_t size, int arguments = 4);

}  // namespace memobserve
