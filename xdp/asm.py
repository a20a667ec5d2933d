"""A tiny eBPF assembler: programs written as readable Python calls, encoded for the kernel.

One method per instruction. A source operand that is a register (``R0``..``R10``) selects the
register form, a plain ``int`` the immediate form. Jumps name a label; ``assemble()`` resolves
labels to instruction offsets. ``ld_imm64``/``ld_map_fd`` take two instruction slots, which the
offsets account for.

Example (the XSK redirect program)::

    from xdp.asm import Asm, Helper, R1, R2, R3, W

    a = Asm()
    a.ldx(W, R2, R1, 16)          # r2 = ctx->rx_queue_index
    a.ld_map_fd(R1, xsks_map_fd)  # r1 = &xsks_map
    a.mov(R3, 2)                  # r3 = XDP_PASS (the action when the slot is empty)
    a.call(Helper.REDIRECT_MAP)   # r0 = bpf_redirect_map(r1, r2, r3)
    a.exit()
    code = a.assemble()           # bytes for xdp.bpf.prog_load

Local labels for macro-like helpers come from ``a.new_label("name")`` (always unique).
"""

from __future__ import annotations

import itertools
import struct
import sys
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self


class Reg(IntEnum):
    """The eleven eBPF registers: R0 result, R1-R5 arguments (clobbered by calls), R6-R9
    callee-saved, R10 read-only frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
FP: Final = Reg.R10


class Size(IntEnum):
    """Memory access widths (the size bits of LD/LDX/ST/STX opcodes)."""

    W = 0x00  # 4 bytes
    H = 0x08  # 2 bytes
    B = 0x10  # 1 byte
    DW = 0x18  # 8 bytes


W, H, B, DW = Size.W, Size.H, Size.B, Size.DW


class Helper(IntEnum):
    """Kernel helper function ids (``enum bpf_func_id``) used by this package's programs."""

    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    KTIME_GET_NS = 5
    GET_SMP_PROCESSOR_ID = 8
    XDP_ADJUST_HEAD = 44
    REDIRECT_MAP = 51
    PROBE_READ_KERNEL = 113


# Instruction classes.
_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
# Modes (LD/ST classes) and the operand-source bit (ALU/JMP classes).
_IMM, _MEM, _ATOMIC = 0x00, 0x60, 0xC0
_K, _X = 0x00, 0x08
# ALU operations.
_ADD, _SUB, _MUL, _DIV, _OR, _AND, _LSH, _RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
_NEG, _MOD, _XOR, _MOV, _ARSH, _END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
# Jump operations.
_JA, _JEQ, _JGT, _JGE, _JSET, _JNE, _JSGT, _JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
_CALL, _EXIT, _JLT, _JLE, _JSLT, _JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
# Byte-swap direction (source bit of BPF_END).
_TO_LE, _TO_BE = 0x00, 0x08
#: src_reg of ld_imm64 meaning "the immediate is a map fd" (BPF_PSEUDO_MAP_FD).
PSEUDO_MAP_FD: Final = 1
#: The atomic "add" operation (imm of a BPF_ATOMIC store).
_ATOMIC_ADD = 0x00

# Native byte order: the kernel reads ``struct bpf_insn`` as a host structure, whose register
# nibbles are bitfields (dst in the low nibble on little-endian hosts, the high one otherwise).
_INSN = struct.Struct("=BBhi")
_LITTLE = sys.byteorder == "little"
INSN_SIZE: Final = _INSN.size

Operand = Reg | int


class AsmError(ValueError):
    """An instruction that cannot be encoded (bad register, out-of-range value, bad label)."""


@dataclass(frozen=True, slots=True)
class Insn:
    """One 8-byte instruction slot."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        regs = (self.src << 4) | self.dst if _LITTLE else (self.dst << 4) | self.src
        return _INSN.pack(self.code, regs, self.off, self.imm)


def _reg(value: object, what: str) -> Reg:
    if not isinstance(value, Reg):
        raise AsmError(f"{what} must be a register R0..R10, not {value!r}")
    return value


def _s16(value: int, what: str) -> int:
    if not -(1 << 15) <= value < 1 << 15:
        raise AsmError(f"{what} {value} does not fit a signed 16-bit offset")
    return value


def _s32(value: int, what: str) -> int:
    """``value`` as the signed 32-bit immediate field; unsigned 32-bit values wrap."""
    if not isinstance(value, int) or isinstance(value, Reg):
        raise AsmError(f"{what} must be an int, not {value!r}")
    if -(1 << 31) <= value < 1 << 31:
        return value
    if 1 << 31 <= value < 1 << 32:
        return value - (1 << 32)
    raise AsmError(f"{what} {value} does not fit 32 bits (use ld_imm64 for 64-bit constants)")


class Asm:
    """An instruction list under construction; ``assemble()`` gives the kernel's bytes."""

    def __init__(self) -> None:
        self._label_ids = itertools.count()
        self._insns: list[Insn] = []
        self._labels: dict[str, int] = {}
        self._fixups: list[tuple[int, str]] = []

    def __len__(self) -> int:
        """Instruction slots emitted so far (ld_imm64 counts two)."""
        return len(self._insns)

    def emit(self, insn: Insn) -> Self:
        """Append a raw instruction (for encodings this class has no method for)."""
        self._insns.append(insn)
        return self

    # --- labels ---

    def label(self, name: str) -> Self:
        """Mark the next instruction as the target ``name``."""
        if name in self._labels:
            raise AsmError(f"label {name!r} defined twice")
        self._labels[name] = len(self._insns)
        return self

    def new_label(self, hint: str = "L") -> str:
        """A label name no other call returns (for code emitted by helper functions)."""
        return f".{hint}{next(self._label_ids)}"

    # --- ALU (64-bit unless the name ends in 32) ---

    def _alu(self, op: int, dst: Reg, src: Operand, wide: bool) -> Self:
        cls = _ALU64 if wide else _ALU
        dst = _reg(dst, "destination")
        if isinstance(src, Reg):
            return self.emit(Insn(cls | op | _X, dst, src))
        return self.emit(Insn(cls | op | _K, dst, 0, 0, _s32(src, "immediate")))

    def mov(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_MOV, dst, src, True)

    def add(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_ADD, dst, src, True)

    def sub(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_SUB, dst, src, True)

    def mul(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_MUL, dst, src, True)

    def div(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_DIV, dst, src, True)

    def mod(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_MOD, dst, src, True)

    def and_(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_AND, dst, src, True)

    def or_(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_OR, dst, src, True)

    def xor(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_XOR, dst, src, True)

    def lsh(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_LSH, dst, src, True)

    def rsh(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_RSH, dst, src, True)

    def arsh(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_ARSH, dst, src, True)

    def neg(self, dst: Reg) -> Self:
        return self.emit(Insn(_ALU64 | _NEG, _reg(dst, "destination")))

    def mov32(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_MOV, dst, src, False)

    def add32(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_ADD, dst, src, False)

    def and32(self, dst: Reg, src: Operand) -> Self:
        return self._alu(_AND, dst, src, False)

    def _swap(self, direction: int, dst: Reg, bits: int) -> Self:
        if bits not in (16, 32, 64):
            raise AsmError(f"byte swap width must be 16, 32 or 64 bits, not {bits}")
        return self.emit(Insn(_ALU | _END | direction, _reg(dst, "destination"), 0, 0, bits))

    def be(self, dst: Reg, bits: int) -> Self:
        """Convert the low ``bits`` of ``dst`` between host and big-endian (network) order."""
        return self._swap(_TO_BE, dst, bits)

    def le(self, dst: Reg, bits: int) -> Self:
        """Convert the low ``bits`` of ``dst`` between host and little-endian order."""
        return self._swap(_TO_LE, dst, bits)

    # --- loads and stores ---

    def ld_imm64(self, dst: Reg, value: int, *, src: int = 0) -> Self:
        """``dst = value`` for any 64-bit constant (two slots)."""
        if not -(1 << 63) <= value < 1 << 64:
            raise AsmError(f"64-bit immediate {value} out of range")
        value &= (1 << 64) - 1
        lo, hi = value & 0xFFFFFFFF, value >> 32
        self.emit(Insn(_LD | _IMM | DW, _reg(dst, "destination"), src, 0, _s32(lo, "low half")))
        return self.emit(Insn(0, 0, 0, 0, _s32(hi, "high half")))

    def ld_map_fd(self, dst: Reg, map_fd: int) -> Self:
        """``dst = &map`` for the map behind ``map_fd`` (the kernel swaps in the pointer)."""
        if not isinstance(map_fd, int) or isinstance(map_fd, Reg) or map_fd < 0:
            raise AsmError(f"map fd must be a non-negative int, not {map_fd!r}")
        return self.ld_imm64(dst, map_fd, src=PSEUDO_MAP_FD)

    def ldx(self, size: Size, dst: Reg, src: Reg, off: int = 0) -> Self:
        """``dst = *(size *)(src + off)``."""
        code = _LDX | _MEM | Size(size)
        dst, src = _reg(dst, "destination"), _reg(src, "source")
        return self.emit(Insn(code, dst, src, _s16(off, "offset")))

    def stx(self, size: Size, dst: Reg, off: int, src: Reg) -> Self:
        """``*(size *)(dst + off) = src``."""
        code = _STX | _MEM | Size(size)
        dst, src = _reg(dst, "destination"), _reg(src, "source")
        return self.emit(Insn(code, dst, src, _s16(off, "offset")))

    def st(self, size: Size, dst: Reg, off: int, imm: int) -> Self:
        """``*(size *)(dst + off) = imm``."""
        code = _ST | _MEM | Size(size)
        return self.emit(
            Insn(code, _reg(dst, "destination"), 0, _s16(off, "offset"), _s32(imm, "immediate"))
        )

    def atomic_add(self, size: Size, dst: Reg, off: int, src: Reg) -> Self:
        """``*(size *)(dst + off) += src`` as one atomic operation (W or DW only)."""
        if size not in (W, DW):
            raise AsmError("atomic add works on W or DW only")
        code = _STX | _ATOMIC | Size(size)
        dst, src = _reg(dst, "destination"), _reg(src, "source")
        return self.emit(Insn(code, dst, src, _s16(off, "offset"), _ATOMIC_ADD))

    # --- jumps, calls ---

    def _jump(self, op: int, dst: Reg, src: Operand, target: str) -> Self:
        self._fixups.append((len(self._insns), target))
        dst = _reg(dst, "compared register")
        if isinstance(src, Reg):
            return self.emit(Insn(_JMP | op | _X, dst, src))
        return self.emit(Insn(_JMP | op | _K, dst, 0, 0, _s32(src, "compared immediate")))

    def ja(self, target: str) -> Self:
        """Jump to ``target`` unconditionally."""
        self._fixups.append((len(self._insns), target))
        return self.emit(Insn(_JMP | _JA))

    def jeq(self, dst: Reg, src: Operand, target: str) -> Self:
        return self._jump(_JEQ, dst, src, target)

    def jne(self, dst: Reg, src: Operand, target: str) -> Self:
        return self._jump(_JNE, dst, src, target)

    def jgt(self, dst: Reg, src: Operand, target: str) -> Self:
        """Unsigned ``>``."""
        return self._jump(_JGT, dst, src, target)

    def jge(self, dst: Reg, src: Operand, target: str) -> Self:
        """Unsigned ``>=``."""
        return self._jump(_JGE, dst, src, target)

    def jlt(self, dst: Reg, src: Operand, target: str) -> Self:
        """Unsigned ``<``."""
        return self._jump(_JLT, dst, src, target)

    def jle(self, dst: Reg, src: Operand, target: str) -> Self:
        """Unsigned ``<=``."""
        return self._jump(_JLE, dst, src, target)

    def jsgt(self, dst: Reg, src: Operand, target: str) -> Self:
        return self._jump(_JSGT, dst, src, target)

    def jsge(self, dst: Reg, src: Operand, target: str) -> Self:
        return self._jump(_JSGE, dst, src, target)

    def jslt(self, dst: Reg, src: Operand, target: str) -> Self:
        return self._jump(_JSLT, dst, src, target)

    def jsle(self, dst: Reg, src: Operand, target: str) -> Self:
        return self._jump(_JSLE, dst, src, target)

    def jset(self, dst: Reg, src: Operand, target: str) -> Self:
        """Jump when ``dst & src`` is non-zero."""
        return self._jump(_JSET, dst, src, target)

    def call(self, helper: Helper | int) -> Self:
        """Call a kernel helper: arguments in R1-R5, result in R0, R1-R5 clobbered."""
        return self.emit(Insn(_JMP | _CALL, 0, 0, 0, _s32(int(helper), "helper id")))

    def exit(self) -> Self:
        """Return R0."""
        return self.emit(Insn(_JMP | _EXIT))

    # --- output ---

    def instructions(self) -> list[Insn]:
        """The instruction slots with every jump offset resolved."""
        insns = list(self._insns)
        for at, target in self._fixups:
            try:
                dest = self._labels[target]
            except KeyError:
                raise AsmError(f"jump at instruction {at} to undefined label {target!r}") from None
            old = insns[at]
            off = _s16(dest - at - 1, f"jump from {at} to {target!r}: offset")
            insns[at] = Insn(old.code, old.dst, old.src, off, old.imm)
        return insns

    def assemble(self) -> bytes:
        """The program as the kernel wants it: 8 bytes per slot, little-endian."""
        return b"".join(insn.encode() for insn in self.instructions())


__all__ = [
    "DW",
    "FP",
    "INSN_SIZE",
    "PSEUDO_MAP_FD",
    "R0",
    "R1",
    "R2",
    "R3",
    "R4",
    "R5",
    "R6",
    "R7",
    "R8",
    "R9",
    "R10",
    "Asm",
    "AsmError",
    "B",
    "H",
    "Helper",
    "Insn",
    "Reg",
    "Size",
    "W",
]
