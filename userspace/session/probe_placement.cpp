#include "session/probe_placement.h"

#include <capstone/capstone.h>

#include <algorithm>
#include <iterator>
#include <vector>

namespace memobserve {

namespace {

// Straight-line instructions skipped at most before the probe. jemalloc's
// free (Debian 12) computes for nine instructions before its first jump.
constexpr int kMaxSkipped = 12;

// The argument registers in order, each with its narrower names.
const std::vector<std::vector<x86_reg>> kArgumentRegisters = {
    {X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL},
    {X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL},
    {X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH},
    {X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH},
};

// Registers the BPF programs read besides the arguments: the stack pointer
// (the return address is read there, and a return probe replaces it), and
// the frame pointer, where the stack walk starts.
constexpr x86_reg kFrameRegisters[] = {
    X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL,
    X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL,
};

bool is_emulated(const cs_insn& instruction) {
    const cs_x86& x86 = instruction.detail->x86;
    bool one_operand = x86.op_count == 1;
    switch (instruction.id) {
    case X86_INS_PUSH:
        return one_operand && x86.operands[0].type == X86_OP_REG;
    case X86_INS_CALL:
    case X86_INS_JMP:
    case X86_INS_JAE: case X86_INS_JA: case X86_INS_JBE: case X86_INS_JB: case X86_INS_JE:
    case X86_INS_JGE: case X86_INS_JG: case X86_INS_JLE: case X86_INS_JL: case X86_INS_JNE:
    case X86_INS_JNO: case X86_INS_JNP: case X86_INS_JNS: case X86_INS_JO: case X86_INS_JP:
    case X86_INS_JS:
        return one_operand && x86.operands[0].type == X86_OP_IMM;
    default:
        return false;
    }
}

// Whether the probe may sit after `instruction`: it neither branches nor
// enters the kernel, and writes neither memory nor a register in `read`.
bool can_skip(csh handle, const cs_insn& instruction, const std::vector<x86_reg>& read) {
    for (cs_group_type group : {CS_GRP_JUMP, CS_GRP_CALL, CS_GRP_RET, CS_GRP_INT, CS_GRP_IRET}) {
        if (cs_insn_group(handle, &instruction, group))
            return false;
    }
    if (instruction.id == X86_INS_SYSCALL || instruction.id == X86_INS_SYSENTER)
        return false;
    const cs_x86& x86 = instruction.detail->x86;
    for (std::uint8_t i = 0; i < x86.op_count; ++i) {
        if (x86.operands[i].type == X86_OP_MEM && (x86.operands[i].access & CS_AC_WRITE) != 0)
            return false;
    }
    cs_regs read_registers;
    cs_regs written;
    std::uint8_t read_count = 0;
    std::uint8_t written_count = 0;
    if (cs_regs_access(handle, &instruction, read_registers, &read_count, written,
                       &written_count) != CS_ERR_OK)
        return false;
    return std::none_of(written, written + written_count, [&](std::uint16_t reg) {
        return std::find(read.begin(), read.end(), static_cast<x86_reg>(reg)) != read.end();
    });
}

}  // namespace

std::uint64_t emulated_probe_offset(const std::uint8_t* code, std::size_t size, int arguments) {
    std::vector<x86_reg> read(std::begin(kFrameRegisters), std::end(kFrameRegisters));
    for (int i = 0; i < std::clamp(arguments, 0, static_cast<int>(kArgumentRegisters.size())); ++i)
        read.insert(read.end(), kArgumentRegisters[i].begin(), kArgumentRegisters[i].end());
    csh handle = 0;
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle) != CS_ERR_OK)
        return 0;
    cs_option(handle, CS_OPT_DETAIL, CS_OPT_ON);
    cs_insn* instruction = cs_malloc(handle);
    std::uint64_t result = 0;
    const std::uint8_t* cursor = code;
    std::size_t left = size;
    std::uint64_t address = 0;
    for (int skipped = 0; skipped <= kMaxSkipped; ++skipped) {
        std::uint64_t at = address;
        if (!cs_disasm_iter(handle, &cursor, &left, &address, instruction))
            break;
        if (is_emulated(*instruction)) {
            result = at;
            break;
        }
        if (!can_skip(handle, *instruction, read))
            break;
    }
    cs_free(instruction, 1);
    cs_close(&handle);
    return result;
}

}  // namespace memobserve
