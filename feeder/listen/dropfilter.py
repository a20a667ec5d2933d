"""Loss injection for tests and the demo: a classic-BPF socket filter that drops chosen packets.

This kernel has no netem and no u32/gact classifiers, so loss is injected where the kernel can
still do it without eBPF: a classic BPF program attached to the receiving socket
(``SO_ATTACH_FILTER``, no privilege needed). The kernel runs it on every datagram before it is
queued and drops those it rejects, so the receiver sees real loss: the datagram never reaches
the socket. The program drops DATA packets of our wire format whose ``first_seq`` (low 32 bits)
is ``remainder`` modulo ``modulus``; everything else (heartbeats, garbage) passes untouched.

Rules on two lines with different moduli give loss on one line (filled by the other) and, where
both match, loss on both (``first_seq`` ≡ r mod lcm(m_a, m_b) when both use the same r).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from dataclasses import dataclass

from feeder.wire import HEADER_SIZE, MAGIC

SO_ATTACH_FILTER = 26  # asm-generic/socket.h
UDP_HEADER = 8  # a UDP socket's filter sees the UDP header first, then the payload

# Classic BPF opcodes (linux/filter.h).
LD_W_ABS, LD_B_ABS, LD_W_LEN = 0x20, 0x30, 0x80
ALU_LSH_K, ALU_OR_X, ALU_MOD_K = 0x64, 0x4C, 0x94
JEQ_K, JGE_K, TAX, RET_K = 0x15, 0x35, 0x07, 0x06
ACCEPT, DROP = 0xFFFFFFFF, 0


@dataclass(frozen=True)
class DropRule:
    """Drop DATA packets whose ``first_seq % modulus == remainder``."""

    modulus: int
    remainder: int

    def __post_init__(self) -> None:
        if not 2 <= self.modulus <= 1 << 16 or not 0 <= self.remainder < self.modulus:
            raise ValueError(
                f"drop rule {self.modulus}:{self.remainder}: use MODULUS:REMAINDER with "
                "2 <= MODULUS <= 65536 and 0 <= REMAINDER < MODULUS"
            )

    @classmethod
    def parse(cls, spec: str) -> DropRule:
        m, sep, r = spec.partition(":")
        if not sep or not m.isdigit() or not r.isdigit():
            raise ValueError(f"drop rule {spec!r}: use MODULUS:REMAINDER, e.g. 20:7")
        return cls(int(m), int(r))

    def matches(self, first_seq: int) -> bool:
        return (first_seq & 0xFFFFFFFF) % self.modulus == self.remainder

    def __str__(self) -> str:
        return f"{self.modulus}:{self.remainder}"


def program(rule: DropRule) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions."""
    p = UDP_HEADER
    seq = p + 16  # first_seq, u64 little-endian; its low 32 bits are bytes 16..19
    return [
        (LD_W_LEN, 0, 0, 0),
        (JGE_K, 1, 0, p + HEADER_SIZE),  # shorter than our header: not ours to judge
        (RET_K, 0, 0, ACCEPT),
        (LD_W_ABS, 0, 0, p),  # BPF loads are big-endian: MAGIC's bytes in order
        (JEQ_K, 1, 0, int.from_bytes(MAGIC, "big")),
        (RET_K, 0, 0, ACCEPT),
        (LD_B_ABS, 0, 0, p + 5),  # kind
        (JEQ_K, 1, 0, 1),  # DATA
        (RET_K, 0, 0, ACCEPT),
        # A = b19 << 24 | b18 << 16 | b17 << 8 | b16
        (LD_B_ABS, 0, 0, seq + 3),
        (ALU_LSH_K, 0, 0, 8),
        (TAX, 0, 0, 0),
        (LD_B_ABS, 0, 0, seq + 2),
        (ALU_OR_X, 0, 0, 0),
        (ALU_LSH_K, 0, 0, 8),
        (TAX, 0, 0, 0),
        (LD_B_ABS, 0, 0, seq + 1),
        (ALU_OR_X, 0, 0, 0),
        (ALU_LSH_K, 0, 0, 8),
        (TAX, 0, 0, 0),
        (LD_B_ABS, 0, 0, seq),
        (ALU_OR_X, 0, 0, 0),
        (ALU_MOD_K, 0, 0, rule.modulus),
        (JEQ_K, 0, 1, rule.remainder),
        (RET_K, 0, 0, DROP),
        (RET_K, 0, 0, ACCEPT),
    ]


def attach(sock: socket.socket, rule: DropRule) -> None:
    """Make the kernel drop the packets ``rule`` matches before they reach ``sock``."""
    insns = program(rule)
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;}: the kernel copies
    # the program during the call, so ``code`` only has to live until it returns.
    fprog = struct.pack("HP", len(insns), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
