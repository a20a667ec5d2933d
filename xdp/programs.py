"""The project's BPF programs, each built two ways: assembled here, and as C source for bcc.

A builder returns a ``ProgramSpec``: the instructions for the ctypes loader and the same logic
in C for bcc. Both reference the *same* maps, created beforehand with ``xdp.maps.Map`` and
named by fd (the C source uses bcc's ``bpf_pseudo_fd(1, fd)``), so whichever loader is used,
user space reads and writes one set of maps.

* ``xsk_redirect(xsks_fd)``: XDP; hands each frame to the AF_XDP socket registered for its RX
  queue in an XSKMAP, and passes it to the kernel stack when that slot is empty.
* ``port_filter(counts_fd, rules_fd)``: XDP; counts packets by class (``FilterCounter``) and,
  for IPv4 UDP whose destination port has a rule in ``rules``, counts them per port and
  passes or drops them per the rule. ``PortFilterMaps`` creates and reads both maps.
* ``drop_counter(...)``: RAW_TRACEPOINT on ``kfree_skb``; counts kernel packet drops per drop
  reason, optionally only for chosen sockets (see ``xdp.tracing``, which supplies the
  kernel-specific offsets).

Example::

    from xdp import loader, programs

    maps = programs.PortFilterMaps.create()
    maps.set_rule(5000, programs.XDP_DROP)
    with loader.load(programs.port_filter(maps.counts.fd, maps.rules.fd)) as prog:
        with loader.attached(ifindex, prog.fd):
            ...
    print(maps.counters(), maps.port_packets(5000))
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from xdp.asm import DW, FP, R0, R1, R2, R3, R4, R6, R7, R8, R9, Asm, B, H, Helper, W
from xdp.bpf import MapType, ProgType, UpdateFlag
from xdp.maps import Map, u32

# XDP actions (enum xdp_action).
XDP_ABORTED: Final = 0
XDP_DROP: Final = 1
XDP_PASS: Final = 2
XDP_TX: Final = 3
XDP_REDIRECT: Final = 4

# struct xdp_md field offsets (uapi, stable).
XDP_MD_DATA: Final = 0
XDP_MD_DATA_END: Final = 4
XDP_MD_RX_QUEUE_INDEX: Final = 16

ETH_HLEN: Final = 14
ETH_P_IP: Final = 0x0800
IPPROTO_UDP: Final = 17


@dataclass(frozen=True)
class ProgramSpec:
    """A program ready to load: instructions for bpf(2) and equivalent C for bcc."""

    name: str
    prog_type: ProgType
    insns: bytes
    c_source: str
    license: str = "GPL"

    @property
    def insn_count(self) -> int:
        return len(self.insns) // 8


# --- XSK redirect ---

XSK_REDIRECT_C: Final = """\
/* Hand each frame to the AF_XDP socket of its RX queue; pass it on when there is none. */
int {name}(struct xdp_md *ctx)
{{
    return bpf_redirect_map((void *)bpf_pseudo_fd(1, {xsks_fd}), ctx->rx_queue_index, XDP_PASS);
}}
"""


def xsk_redirect(xsks_fd: int, *, name: str = "xsk_redirect") -> ProgramSpec:
    """``bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS)`` for the XSKMAP ``xsks_fd``."""
    a = Asm()
    a.ldx(W, R2, R1, XDP_MD_RX_QUEUE_INDEX)
    a.ld_map_fd(R1, xsks_fd)
    # The low bits of the flags are the action when the queue has no socket (kernel >= 5.3).
    a.mov(R3, XDP_PASS)
    a.call(Helper.REDIRECT_MAP)
    a.exit()
    return ProgramSpec(
        name, ProgType.XDP, a.assemble(), XSK_REDIRECT_C.format(name=name, xsks_fd=xsks_fd)
    )


# --- port filter / counter ---


class FilterCounter(IntEnum):
    """Slots of the port filter's per-CPU ``counts`` array."""

    PACKETS = 0  # every frame seen
    IPV4 = 1  # with a complete IPv4 header
    UDP = 2  # IPv4 UDP with a complete UDP header (first fragments only)
    MATCHED = 3  # UDP whose destination port has a rule
    DROPPED = 4  # dropped because the rule said XDP_DROP


#: A rule: u32 action (XDP_PASS/XDP_DROP), u32 padding, u64 packets that matched it.
RULE: Final = struct.Struct("=IIQ")
RULE_PACKETS_OFFSET: Final = 8
#: Rules are keyed by destination port, a host-order u16.
PORT_KEY: Final = struct.Struct("=H")
MAX_RULES: Final = 1024

PORT_FILTER_C: Final = """\
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

struct rule {{
    u32 action;   /* XDP_PASS or XDP_DROP */
    u32 pad;
    u64 packets;  /* frames that matched, all CPUs (atomic) */
}};

static __always_inline void count(u32 slot)
{{
    u64 *n = bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, {counts_fd}), &slot);
    if (n)
        *n += 1;  /* per-CPU slot: no other CPU writes it */
}}

int {name}(struct xdp_md *ctx)
{{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp;
    struct rule *rule;
    u16 port;

    count({PACKETS});
    if ((void *)(eth + 1) > end || eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    if ((void *)(ip + 1) > end)
        return XDP_PASS;
    count({IPV4});
    if (ip->protocol != IPPROTO_UDP || (ip->frag_off & htons(0x1fff)) || ip->ihl < 5)
        return XDP_PASS;
    udp = (void *)ip + ip->ihl * 4;
    if ((void *)(udp + 1) > end)
        return XDP_PASS;
    count({UDP});
    port = ntohs(udp->dest);
    rule = bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, {rules_fd}), &port);
    if (!rule)
        return XDP_PASS;
    __sync_fetch_and_add(&rule->packets, 1);
    count({MATCHED});
    if (rule->action != XDP_DROP)
        return XDP_PASS;
    count({DROPPED});
    return XDP_DROP;
}}
"""


def _count_percpu(a: Asm, counts_fd: int, slot: int, key_at: int) -> None:
    """Emit ``counts[slot] += 1`` on a per-CPU u64 array (clobbers R0-R5)."""
    skip = a.new_label("count_done")
    a.st(W, FP, key_at, slot)
    a.ld_map_fd(R1, counts_fd)
    a.mov(R2, FP)
    a.add(R2, key_at)
    a.call(Helper.MAP_LOOKUP_ELEM)
    a.jeq(R0, 0, skip)
    a.ldx(DW, R1, R0, 0)
    a.add(R1, 1)
    a.stx(DW, R0, 0, R1)
    a.label(skip)


def port_filter(counts_fd: int, rules_fd: int, *, name: str = "port_filter") -> ProgramSpec:
    """Count frames (``FilterCounter``) and pass/drop IPv4 UDP per destination-port rule.

    ``counts``: PERCPU_ARRAY, u32 -> u64, ``len(FilterCounter)`` entries.
    ``rules``: HASH, u16 port (host order) -> ``RULE``. Frames without a rule, non-IPv4
    (including VLAN-tagged) and non-first fragments always pass.
    """
    a = Asm()
    count_key, port_key = -8, -2  # stack slots for the two map keys

    def count(slot: FilterCounter) -> None:
        _count_percpu(a, counts_fd, slot, count_key)

    a.mov(R6, R1)  # ctx; R6-R9 survive helper calls
    count(FilterCounter.PACKETS)
    a.ldx(W, R7, R6, XDP_MD_DATA)
    a.ldx(W, R8, R6, XDP_MD_DATA_END)
    # Ethernet header, IPv4 only.
    a.mov(R1, R7)
    a.add(R1, ETH_HLEN)
    a.jgt(R1, R8, "pass")
    a.ldx(H, R1, R7, 12)
    a.be(R1, 16)
    a.jne(R1, ETH_P_IP, "pass")
    # Fixed part of the IPv4 header.
    a.mov(R1, R7)
    a.add(R1, ETH_HLEN + 20)
    a.jgt(R1, R8, "pass")
    count(FilterCounter.IPV4)
    a.ldx(B, R1, R7, ETH_HLEN + 9)  # protocol
    a.jne(R1, IPPROTO_UDP, "pass")
    a.ldx(H, R1, R7, ETH_HLEN + 6)  # flags + fragment offset
    a.be(R1, 16)
    a.and_(R1, 0x1FFF)
    a.jne(R1, 0, "pass")  # a later fragment carries no UDP header
    a.ldx(B, R1, R7, ETH_HLEN)  # version + IHL
    a.and_(R1, 0x0F)
    a.jlt(R1, 5, "pass")
    a.lsh(R1, 2)
    # UDP header after the (variable-length) IPv4 header.
    a.mov(R9, R7)
    a.add(R9, ETH_HLEN)
    a.add(R9, R1)
    a.mov(R1, R9)
    a.add(R1, 8)
    a.jgt(R1, R8, "pass")
    count(FilterCounter.UDP)
    a.ldx(H, R1, R9, 2)  # destination port, network order
    a.be(R1, 16)
    a.stx(H, FP, port_key, R1)
    a.ld_map_fd(R1, rules_fd)
    a.mov(R2, FP)
    a.add(R2, port_key)
    a.call(Helper.MAP_LOOKUP_ELEM)
    a.jeq(R0, 0, "pass")
    a.mov(R9, R0)  # the rule
    # The rule's counter is shared by all CPUs: add atomically.
    a.mov(R1, 1)
    a.atomic_add(DW, R9, RULE_PACKETS_OFFSET, R1)
    count(FilterCounter.MATCHED)
    a.ldx(W, R1, R9, 0)
    a.jne(R1, XDP_DROP, "pass")
    count(FilterCounter.DROPPED)
    a.mov(R0, XDP_DROP)
    a.exit()
    a.label("pass")
    a.mov(R0, XDP_PASS)
    a.exit()
    source = PORT_FILTER_C.format(
        name=name,
        counts_fd=counts_fd,
        rules_fd=rules_fd,
        **{c.name: int(c) for c in FilterCounter},
    )
    return ProgramSpec(name, ProgType.XDP, a.assemble(), source)


@dataclass
class PortFilterMaps:
    """The two maps of ``port_filter``, with typed accessors."""

    counts: Map
    rules: Map

    @classmethod
    def create(cls, *, max_rules: int = MAX_RULES) -> Self:
        counts = Map.create(MapType.PERCPU_ARRAY, 4, 8, len(FilterCounter), name="pf_counts")
        try:
            rules = Map.create(MapType.HASH, PORT_KEY.size, RULE.size, max_rules, name="pf_rules")
        except BaseException:
            counts.close()
            raise
        return cls(counts, rules)

    def set_rule(self, port: int, action: int) -> None:
        """Pass or drop UDP to ``port`` (resets the rule's packet count)."""
        if action not in (XDP_PASS, XDP_DROP):
            raise ValueError(f"rule action must be XDP_PASS or XDP_DROP, not {action!r}")
        self.rules.update(_port(port), RULE.pack(action, 0, 0))

    def clear_rule(self, port: int) -> bool:
        """Remove the rule for ``port``; False when there was none."""
        return self.rules.delete(_port(port))

    def port_packets(self, port: int) -> int:
        """Frames that matched the rule for ``port`` (0 without a rule)."""
        raw = self.rules.lookup(_port(port))
        return 0 if raw is None else int(RULE.unpack(raw)[2])

    def counters(self) -> dict[str, int]:
        """Every ``FilterCounter`` summed over CPUs, by lower-case name."""
        return {c.name.lower(): self.counts.sum_percpu(u32(c)) for c in FilterCounter}

    def close(self) -> None:
        self.counts.close()
        self.rules.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _port(port: int) -> bytes:
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"UDP port must be an integer 0..65535, not {port!r}")
    return PORT_KEY.pack(port)


# --- kernel drop counter (raw tracepoint kfree_skb) ---

DROP_COUNTER_C: Final = """\
/* Count kfree_skb drops per reason{filter_comment}. */
int {name}(struct bpf_raw_tracepoint_args *ctx)
{{
    u32 reason = (u32)ctx->args[{reason_arg}];
    u64 one = 1, *n;
{filter_c}
    n = bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, {counts_fd}), &reason);
    if (n) {{
        *n += 1;  /* per-CPU value */
        return 0;
    }}
    if (bpf_map_update_elem((void *)bpf_pseudo_fd(1, {counts_fd}), &reason, &one, BPF_NOEXIST)) {{
        /* another CPU created the entry first */
        n = bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, {counts_fd}), &reason);
        if (n)
            *n += 1;
    }}
    return 0;
}}
"""

_DROP_FILTER_C: Final = """\
    u64 cookie = 0;
    void *sk = (void *)ctx->args[{sock_arg}];
    if (!sk)
        return 0;
    if (bpf_probe_read_kernel(&cookie, sizeof(cookie), sk + {cookie_offset}))
        return 0;
    if (!bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, {sockets_fd}), &cookie))
        return 0;
"""


@dataclass(frozen=True)
class SocketFilter:
    """Where ``drop_counter`` finds the socket cookie, and which cookies count."""

    sockets_fd: int  # HASH u64 socket cookie -> u8 (any value)
    sock_arg: int  # index of the ``struct sock *`` argument of the tracepoint
    cookie_offset: int  # offsetof(struct sock, __sk_common.skc_cookie)


def drop_counter(
    counts_fd: int,
    *,
    reason_arg: int,
    socket_filter: SocketFilter | None = None,
    name: str = "drop_counter",
) -> ProgramSpec:
    """RAW_TRACEPOINT program for ``kfree_skb``: ``counts[reason] += 1`` per drop.

    ``counts``: PERCPU_HASH, u32 reason -> u64. ``reason_arg`` is the index of the drop
    reason among the tracepoint's arguments. With ``socket_filter``, only drops whose
    receiving socket (``rx_sk``) has a cookie present in ``sockets`` are counted.
    """
    a = Asm()
    reason_key, scratch = -4, -16
    a.mov(R6, R1)  # ctx: u64 args[]
    a.ldx(DW, R7, R6, 8 * reason_arg)
    if socket_filter is not None:
        a.ldx(DW, R3, R6, 8 * socket_filter.sock_arg)
        a.jeq(R3, 0, "out")  # drops without a receiving socket
        a.add(R3, socket_filter.cookie_offset)
        a.mov(R1, FP)
        a.add(R1, scratch)
        a.mov(R2, 8)
        a.call(Helper.PROBE_READ_KERNEL)
        a.jne(R0, 0, "out")
        a.ld_map_fd(R1, socket_filter.sockets_fd)
        a.mov(R2, FP)
        a.add(R2, scratch)
        a.call(Helper.MAP_LOOKUP_ELEM)
        a.jeq(R0, 0, "out")
    a.stx(W, FP, reason_key, R7)

    def increment_existing(missing: str) -> None:
        """counts[reason] += 1 if the entry exists, then done; else jump to ``missing``."""
        a.ld_map_fd(R1, counts_fd)
        a.mov(R2, FP)
        a.add(R2, reason_key)
        a.call(Helper.MAP_LOOKUP_ELEM)
        a.jeq(R0, 0, missing)
        a.ldx(DW, R1, R0, 0)
        a.add(R1, 1)
        a.stx(DW, R0, 0, R1)  # per-CPU value: a plain add is enough
        a.ja("out")

    increment_existing("insert")
    a.label("insert")  # first drop with this reason: create the entry with 1
    a.st(DW, FP, scratch, 1)
    a.ld_map_fd(R1, counts_fd)
    a.mov(R2, FP)
    a.add(R2, reason_key)
    a.mov(R3, FP)
    a.add(R3, scratch)
    a.mov(R4, UpdateFlag.NOEXIST)
    a.call(Helper.MAP_UPDATE_ELEM)
    a.jeq(R0, 0, "out")
    # Another CPU created the entry in between: it exists now, add to it.
    increment_existing("out")
    a.label("out")
    a.mov(R0, 0)
    a.exit()
    if socket_filter is None:
        filter_c, comment = "", ""
    else:
        filter_c = _DROP_FILTER_C.format(
            sock_arg=socket_filter.sock_arg,
            cookie_offset=socket_filter.cookie_offset,
            sockets_fd=socket_filter.sockets_fd,
        )
        comment = " for sockets whose cookie is in the sockets map"
    source = DROP_COUNTER_C.format(
        name=name,
        reason_arg=reason_arg,
        counts_fd=counts_fd,
        filter_c=filter_c,
        filter_comment=comment,
    )
    return ProgramSpec(name, ProgType.RAW_TRACEPOINT, a.assemble(), source)


__all__ = [
    "DROP_COUNTER_C",
    "PORT_FILTER_C",
    "RULE",
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_REDIRECT",
    "XDP_TX",
    "XSK_REDIRECT_C",
    "FilterCounter",
    "PortFilterMaps",
    "ProgramSpec",
    "SocketFilter",
    "drop_counter",
    "port_filter",
    "xsk_redirect",
]
