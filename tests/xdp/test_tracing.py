"""Kernel drop tracing: make the kernel drop UDP datagrams in a test namespace (a receiver with
a tiny buffer that never reads) and check the tracer's counts against the kernel's own."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from feeder.net.snmp import read_snmp_in
from feeder.net.topology import Host, TwoHostTopology
from tests.privilege import require_root
from xdp import bpf, btf, tracing
from xdp.btf import Btf, BtfError
from xdp.tracing import DropTracer, TracingError

pytestmark = pytest.mark.privileged

SENT = 200
#: Bound on waiting for the receiving side to finish processing (not a performance limit).
SETTLE_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root("drop tracing loads a BPF program on a raw tracepoint")


def socket_drops(host: Host, sock: socket.socket) -> int:
    """The kernel's per-socket drop counter (``drops`` column of /proc/net/udp)."""
    inode = str(Path(f"/proc/self/fd/{sock.fileno()}").stat().st_ino)
    with host.entered():
        lines = Path("/proc/thread-self/net/udp").read_text().splitlines()
    for line in lines[1:]:
        fields = line.split()
        if fields[9] == inode:
            return int(fields[-1])
    raise AssertionError(f"socket inode {inode} not in /proc/net/udp of {host.netns}")


def flood(topo: TwoHostTopology, rx: socket.socket) -> tuple[int, dict[str, int]]:
    """Send SENT datagrams from a to ``rx`` in b, then read ``rx`` until every datagram is
    accounted for (read or dropped). Returns how many were read and b's UDP counter deltas."""
    before = read_snmp_in(topo.b.netns)["Udp"]
    with topo.a.socket() as tx:
        for i in range(SENT):
            tx.sendto(b"%04d" % i + bytes(996), rx.getsockname())
    received = 0
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while received + socket_drops(topo.b, rx) < SENT and time.monotonic() < deadline:
        received += drain(rx)
        time.sleep(0.001)
    after = read_snmp_in(topo.b.netns)["Udp"]
    return received, {name: after[name] - before[name] for name in after}


def _no_btf() -> Btf:
    raise BtfError("cannot read kernel BTF at /nonexistent (test)")


def tiny_receiver(host: Host) -> socket.socket:
    rx = host.socket()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
    rx.bind((host.address, 0))
    return rx


def drain(sock: socket.socket) -> int:
    sock.setblocking(False)
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        count += 1


def test_drops_at_a_full_receive_queue_are_counted_per_socket(topo: TwoHostTopology) -> None:
    with tiny_receiver(topo.b) as rx, topo.b.socket() as bystander:
        bystander.bind((topo.b.address, 0))
        with (
            DropTracer(sockets=[rx]) as ours,
            DropTracer(sockets=[bystander]) as theirs,
            DropTracer() as everything,
        ):
            received, delta = flood(topo, rx)
            mine = ours.snapshot()
            host_wide = everything.snapshot()
            assert theirs.snapshot() == {}
        dropped = socket_drops(topo.b, rx)
        assert dropped > 0, "the tiny receive buffer never overflowed"
        assert received + dropped == SENT
        assert delta["InDatagrams"] == received
        # The tracer saw exactly the drops the kernel charged to this socket, with the reason.
        assert mine == {"SOCKET_RCVBUFF": dropped}
        assert delta["RcvbufErrors"] == dropped
        assert host_wide.get("SOCKET_RCVBUFF", 0) >= dropped
        # After stop(), the final counts stay readable.
        assert ours.snapshot() == mine and ours.count("SOCKET_RCVBUFF") == dropped
        assert not ours.running


def test_drops_without_a_socket_are_seen_host_wide_only(topo: TwoHostTopology) -> None:
    with topo.b.socket() as rx, topo.a.socket() as tx:
        rx.bind((topo.b.address, 0))
        free_port = rx.getsockname()[1]
        rx.close()  # nobody listens on free_port now
        with DropTracer() as everything, DropTracer(sockets=[]) as nobody:
            for _ in range(5):
                tx.sendto(b"x", (topo.b.address, free_port))
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while everything.count("NO_SOCKET") < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert everything.count("NO_SOCKET") >= 5
            assert nobody.snapshot() == {}


def test_sockets_can_be_added_while_running(topo: TwoHostTopology) -> None:
    with tiny_receiver(topo.b) as rx, DropTracer(sockets=[]) as tracer:
        tracer.add_socket(rx)
        received, _ = flood(topo, rx)
        assert received < SENT
        assert tracer.count("SOCKET_RCVBUFF") == socket_drops(topo.b, rx) > 0


def test_the_program_is_unloaded_when_the_tracer_stops() -> None:
    tracer = DropTracer().start()
    prog_id = tracer.program.id
    assert bpf.prog_exists(prog_id)
    tracer.stop()
    tracer.stop()  # idempotent
    # The kernel releases a tracepoint link's program after an RCU grace period.
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while bpf.prog_exists(prog_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not bpf.prog_exists(prog_id)
    with pytest.raises(TracingError, match="not running"):
        _ = tracer.program


def test_reason_names_agree_between_btf_and_tracefs() -> None:
    mounts_before = Path("/proc/self/mounts").read_text()
    from_btf = tracing.reasons_from_btf(btf.vmlinux())
    from_tracefs = tracing.reasons_from_format(tracing.read_format_file())
    assert Path("/proc/self/mounts").read_text() == mounts_before  # any private mount is gone
    assert "SOCKET_RCVBUFF" in from_btf.values() and "SOCKET_RCVBUFF" in from_tracefs.values()
    shared = from_btf.keys() & from_tracefs.keys()
    assert len(shared) > 50
    assert all(from_btf[k] == from_tracefs[k] for k in shared)


def test_reason_names_fall_back_to_tracefs_without_btf() -> None:
    names = tracing.reason_names(_no_btf, tracing.read_format_file)
    assert "NO_SOCKET" in names.values()


def test_without_btf_host_wide_counting_still_works(topo: TwoHostTopology) -> None:
    with topo.a.socket() as tx, DropTracer(btf=_no_btf) as tracer:
        for _ in range(3):
            tx.sendto(b"x", (topo.b.address, 9))  # nobody listens on b:9
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while tracer.count("NO_SOCKET") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tracer.count("NO_SOCKET") >= 3


def test_without_btf_per_socket_counting_is_refused_clearly() -> None:
    with pytest.raises(TracingError, match="per socket needs the kernel's BTF: cannot read"):
        DropTracer(sockets=[], btf=_no_btf).start()

    def no_tracefs() -> str:
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(TracingError, match=r"no kernel BTF .* and no readable tracefs"):
        DropTracer(btf=_no_btf, format_text=no_tracefs).start()


def test_snapshot_before_start_is_an_error() -> None:
    with pytest.raises(TracingError, match="never started"):
        DropTracer().snapshot()
    with pytest.raises(TracingError, match="no socket filter"):
        DropTracer().add_socket(socket.socket())


def test_kfree_skb_layout_comes_from_btf() -> None:
    layout = tracing.kfree_skb_layout(btf.vmlinux())
    args = btf.vmlinux().tracepoint_args("kfree_skb")
    assert args[layout.reason_arg][1] == "enum skb_drop_reason"
    assert layout.sock_arg is not None and args[layout.sock_arg][1] == "struct sock *"
    assert 0 < layout.cookie_offset < 4096
