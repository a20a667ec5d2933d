"""The assembler: instruction encodings the kernel defines, label resolution, bad input."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdp.asm import DW, FP, R0, R1, R2, R3, R10, Asm, AsmError, B, H, Helper, Insn, W

_INSN = struct.Struct("=BBhi")


def decode(code: bytes) -> list[tuple[int, int, int, int, int]]:
    """(opcode, dst, src, off, imm) per slot (little-endian hosts: dst is the low nibble)."""
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = _INSN.unpack_from(code, i)
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def test_encodings_match_the_kernel_opcode_table() -> None:
    a = Asm()
    a.mov(R0, 2)  # BPF_ALU64|BPF_MOV|BPF_K = 0xb7
    a.mov(R1, R2)  # BPF_ALU64|BPF_MOV|BPF_X = 0xbf
    a.add32(R3, -1)  # BPF_ALU|BPF_ADD|BPF_K = 0x04
    a.ldx(W, R2, R1, 16)  # BPF_LDX|BPF_MEM|BPF_W = 0x61
    a.ldx(B, R2, R1, 1)  # 0x71
    a.ldx(H, R2, R1, 2)  # 0x69
    a.stx(DW, FP, -8, R1)  # BPF_STX|BPF_MEM|BPF_DW = 0x7b
    a.st(W, FP, -4, 7)  # BPF_ST|BPF_MEM|BPF_W = 0x62
    a.atomic_add(DW, R1, 8, R2)  # BPF_STX|BPF_ATOMIC|BPF_DW = 0xdb, imm BPF_ADD
    a.be(R1, 16)  # BPF_ALU|BPF_END|BPF_TO_BE = 0xdc
    a.call(Helper.REDIRECT_MAP)  # 0x85, imm 51
    a.exit()  # 0x95
    assert decode(a.assemble()) == [
        (0xB7, 0, 0, 0, 2),
        (0xBF, 1, 2, 0, 0),
        (0x04, 3, 0, 0, -1),
        (0x61, 2, 1, 16, 0),
        (0x71, 2, 1, 1, 0),
        (0x69, 2, 1, 2, 0),
        (0x7B, 10, 1, -8, 0),
        (0x62, 10, 0, -4, 7),
        (0xDB, 1, 2, 8, 0),
        (0xDC, 1, 0, 0, 16),
        (0x85, 0, 0, 0, 51),
        (0x95, 0, 0, 0, 0),
    ]


def test_ld_map_fd_takes_two_slots_with_the_pseudo_source() -> None:
    a = Asm().ld_map_fd(R1, 7)
    assert len(a) == 2
    assert decode(a.assemble()) == [(0x18, 1, 1, 0, 7), (0, 0, 0, 0, 0)]


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1))
def test_ld_imm64_splits_any_64_bit_value(value: int) -> None:
    (lo, hi) = decode(Asm().ld_imm64(R0, value).assemble())
    assert lo[:3] == (0x18, 0, 0) and hi[:4] == (0, 0, 0, 0)
    joined = (lo[4] & 0xFFFFFFFF) | (hi[4] & 0xFFFFFFFF) << 32
    assert joined == value & ((1 << 64) - 1)


def test_jump_offsets_count_slots_forward_and_backward() -> None:
    a = Asm()
    a.label("top")  # slot 0
    a.jeq(R1, 0, "end")  # slot 0 -> 4: off 3
    a.ld_imm64(R2, 1 << 40)  # slots 1, 2
    a.ja("top")  # slot 3 -> 0: off -4
    a.label("end")
    a.exit()  # slot 4
    slots = decode(a.assemble())
    assert slots[0] == (0x15, 1, 0, 3, 0)  # BPF_JMP|BPF_JEQ|BPF_K
    assert slots[3] == (0x05, 0, 0, -4, 0)  # BPF_JMP|BPF_JA


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=40))
def test_every_jump_lands_on_its_label(gaps: list[int]) -> None:
    """Random runs of filler between a jump and its label: the offset always hits the label."""
    a = Asm()
    targets = []
    for i, gap in enumerate(gaps):
        name = a.new_label("t")
        targets.append((len(a), name))
        a.jne(R1, i, name)
        for _ in range(gap):
            a.ld_imm64(R2, i)
        a.label(name)
        a.mov(R0, i)  # marks the label's slot
    slots = decode(a.assemble())
    for at, _name in targets:
        op, _dst, _src, off, imm = slots[at]
        landing = slots[at + 1 + off]
        assert op == 0x55 and landing[0] == 0xB7 and landing[4] == imm


def test_new_labels_are_unique() -> None:
    a = Asm()
    assert len({a.new_label("x") for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda a: a.ja("nowhere").assemble(), "undefined label 'nowhere'"),
        (lambda a: a.label("x").label("x"), "defined twice"),
        (lambda a: a.mov(R0, 1 << 32), "does not fit 32 bits"),
        (lambda a: a.mov(3, 1), "must be a register"),
        (lambda a: a.ldx(W, R0, R1, 1 << 15), "signed 16-bit"),
        (lambda a: a.atomic_add(H, R0, 0, R1), "W or DW"),
        (lambda a: a.be(R0, 8), "16, 32 or 64"),
        (lambda a: a.ld_imm64(R0, 1 << 64), "out of range"),
        (lambda a: a.ld_map_fd(R1, -1), "non-negative"),
    ],
)
def test_bad_instructions_are_refused_with_a_reason(
    build: Callable[[Asm], object], message: str
) -> None:
    with pytest.raises(AsmError, match=message):
        build(Asm())


def test_a_far_jump_that_does_not_fit_16_bits_is_refused() -> None:
    a = Asm()
    a.ja("far")
    for _ in range(1 << 15):
        a.mov(R0, 0)
    a.label("far")
    a.exit()
    with pytest.raises(AsmError, match="signed 16-bit"):
        a.assemble()


def test_unsigned_32_bit_immediates_wrap_to_the_signed_field() -> None:
    assert decode(Asm().mov32(R0, 0xFFFFFFFF).assemble())[0][4] == -1


def test_emit_accepts_raw_instructions() -> None:
    assert Asm().emit(Insn(0x95)).assemble() == Insn(0x95).encode()
    assert R10 is FP
