"""xdp.umem and xdp.xsk: UMEM backing (normal and huge pages), ring setup and teardown, bind
modes and their errors on veth, TX kicks, and RX through an XSKMAP redirect program."""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.net.topology import TwoHostTopology
from tests.privilege import require_root
from xdp import loader, programs
from xdp.bpf import MapType
from xdp.frames import UdpFrames
from xdp.maps import Map
from xdp.transport import XdpTransport, find_interface
from xdp.umem import Umem, UmemError, read_huge_pages
from xdp.xsk import XskError, XskSocket

MEMINFO = """\
MemTotal:       24000000 kB
HugePages_Total:      64
HugePages_Free:       60
HugePages_Rsvd:        0
Hugepagesize:       2048 kB
"""


def test_read_huge_pages() -> None:
    pages = read_huge_pages(MEMINFO)
    assert pages is not None
    assert (pages.total, pages.free, pages.size) == (64, 60, 2 << 20)
    assert read_huge_pages("MemTotal: 1 kB\n") is None


def test_umem_geometry_is_checked() -> None:
    with pytest.raises(ValueError, match="power of two in 2048"):
        Umem.allocate(16, 1000)
    with pytest.raises(ValueError, match="power of two in 2048"):
        Umem.allocate(16, 8192)
    with pytest.raises(ValueError, match="frame count 0"):
        Umem.allocate(0)
    with pytest.raises(ValueError, match="huge_pages 'yes'"):
        Umem.allocate(16, huge_pages="yes")  # type: ignore[arg-type]


def test_umem_on_normal_pages_says_why(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO.replace("HugePages_Free:       60", "HugePages_Free:        0"))
    umem = Umem.allocate(64, 2048, meminfo=meminfo)
    try:
        assert not umem.huge
        assert "normal pages (0 of 64 huge pages of 2048 KiB free, 1 needed" in umem.backing
        assert umem.frame_addresses()[:3] == [0, 2048, 4096]
        assert len(umem.view) == umem.size == 64 * 2048
        umem.view[-1] = 7  # writable to the last byte
        reg = umem.registration()
        assert int.from_bytes(reg[:8], "little") == umem.address
        assert int.from_bytes(reg[8:16], "little") == umem.size
        assert int.from_bytes(reg[16:20], "little") == 2048
    finally:
        umem.close()
    assert umem.closed
    with pytest.raises(UmemError, match="cannot use huge pages: 0 of 64"):
        Umem.allocate(64, 2048, huge_pages="require", meminfo=meminfo)


def _smaps_page_size(address: int) -> int:
    """KernelPageSize (bytes) of the mapping that starts at ``address`` in this process."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        start = line.split("-", 1)[0]
        if all(c in "0123456789abcdef" for c in start) and int(start, 16) == address:
            for detail in lines[i + 1 :]:
                if detail.startswith("KernelPageSize:"):
                    return int(detail.split()[1]) * 1024
    raise AssertionError(f"no mapping at {address:#x}")


@pytest.fixture
def huge_pages() -> Iterator[int]:
    """Eight default-size huge pages reserved for the test; the old reservation restored."""
    require_root("reserving huge pages writes vm.nr_hugepages")
    knob = Path("/proc/sys/vm/nr_hugepages")
    old = knob.read_text()
    try:
        knob.write_text(str(int(old) + 8))
        pages = read_huge_pages(Path("/proc/meminfo").read_text())
        assert pages is not None and pages.free >= 8, "the kernel granted no huge pages"
        yield pages.size
    finally:
        knob.write_text(old)


def test_umem_uses_reserved_huge_pages(huge_pages: int) -> None:
    frames = huge_pages // 2048  # exactly one huge page
    umem = Umem.allocate(frames, 2048)
    try:
        assert umem.huge, umem.backing
        assert umem.backing == f"1 huge pages of {huge_pages >> 10} KiB"
        assert _smaps_page_size(umem.address) == huge_pages
    finally:
        umem.close()
    normal = Umem.allocate(frames, 2048, huge_pages="never")
    try:
        assert not normal.huge and _smaps_page_size(normal.address) == os.sysconf("SC_PAGESIZE")
    finally:
        normal.close()


@pytest.fixture
def umem() -> Iterator[Umem]:
    u = Umem.allocate(256, 2048, huge_pages="never")
    try:
        yield u
    finally:
        u.close()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_rings_are_mapped_at_kernel_offsets_and_torn_down(
    topo: TwoHostTopology, umem: Umem
) -> None:
    before = _open_fds()
    xsk = XskSocket.open(
        umem,
        topo.a.ifname,
        mode="copy",
        tx_size=256,
        completion_size=256,
        fill_size=1,
        netns=topo.a.netns,
    )
    try:
        assert xsk.mode == "copy" and xsk.driver == "veth" and xsk.queue == 0
        assert xsk.tx is not None and xsk.rx is None
        assert (xsk.tx.size, xsk.completion.size, xsk.fill.size) == (256, 256, 1)
        assert xsk.tx.entries.shape == (256,) and xsk.completion.entries.shape == (256,)
        assert xsk.tx.producer() == xsk.tx.consumer() == 0
        # Copy mode: the kernel asks for a kick before it sends anything.
        assert xsk.tx.needs_wakeup()
        assert xsk.tx_budget == 256  # XDP_MAX_TX_SKB_BUDGET raised to the ring size
        assert xsk.statistics().tx_invalid_descs == 0
        fd = xsk.fileno()
        assert os.path.exists(f"/proc/self/fd/{fd}")
    finally:
        xsk.close()
    assert _open_fds() == before
    # The queue is free again (after the kernel's deferred release): the socket went away.
    again = XskSocket.open(umem, topo.a.ifname, mode="copy", tx_size=256, netns=topo.a.netns)
    again.close()


def test_zero_copy_on_veth_says_the_driver_cannot(topo: TwoHostTopology, umem: Umem) -> None:
    with pytest.raises(XskError) as info:
        XskSocket.open(umem, topo.a.ifname, mode="zerocopy", tx_size=256, netns=topo.a.netns)
    assert info.value.errno == errno.EOPNOTSUPP
    assert info.value.reason == "EOPNOTSUPP (driver veth has no AF_XDP zero-copy support)"
    assert "bind to" in str(info.value) and "queue 0 in zerocopy mode" in str(info.value)


def test_second_socket_on_a_queue_is_busy(topo: TwoHostTopology, umem: Umem) -> None:
    first = XskSocket.open(umem, topo.a.ifname, tx_size=256, netns=topo.a.netns)
    other = Umem.allocate(256, 2048, huge_pages="never")
    try:
        with pytest.raises(XskError, match=r"EBUSY .*already has an AF_XDP socket bound"):
            XskSocket.open(other, topo.a.ifname, tx_size=256, netns=topo.a.netns)
        with pytest.raises(XskError, match=r"EINVAL .*has no queue 7"):
            XskSocket.open(other, topo.a.ifname, queue=7, tx_size=256, netns=topo.a.netns)
    finally:
        other.close()
        first.close()


def test_bad_interface_and_ring_sizes(topo: TwoHostTopology, umem: Umem) -> None:
    with pytest.raises(XskError, match=r"no interface 'nope0' in network namespace"):
        XskSocket.open(umem, "nope0", netns=topo.a.netns)
    with pytest.raises(ValueError, match="TX ring size 100 must be a power of two"):
        XskSocket.open(umem, topo.a.ifname, tx_size=100, netns=topo.a.netns)
    with pytest.raises(ValueError, match="needs a TX or an RX ring"):
        XskSocket.open(umem, topo.a.ifname, tx_size=0, netns=topo.a.netns)
    with pytest.raises(ValueError, match="mode 'fast'"):
        XskSocket.open(umem, topo.a.ifname, mode="fast", netns=topo.a.netns)  # type: ignore[arg-type]


def test_kick_sends_what_the_tx_ring_holds(topo: TwoHostTopology, umem: Umem) -> None:
    """Raw ring use: descriptors in, one kick, completions out, datagrams at the receiver."""
    rx = topo.b.socket()
    rx.bind(("239.7.0.1", 47001))
    rx.setsockopt(
        socket.IPPROTO_IP,
        socket.IP_ADD_MEMBERSHIP,
        socket.inet_aton("239.7.0.1") + socket.inet_aton(topo.b.address),
    )
    xsk = XskSocket.open(umem, topo.a.ifname, tx_size=256, netns=topo.a.netns)
    try:
        mac = find_interface(topo.a.ifname, topo.a.netns).mac
        frames = UdpFrames(mac, topo.a.address, 47000, [("239.7.0.1", 47001)])
        tx = xsk.tx
        assert tx is not None
        lengths = []
        for i in range(40):
            frame = frames.build(f"datagram {i}".encode(), 0)
            umem.view[i * 2048 : i * 2048 + len(frame)] = frame
            lengths.append(len(frame))
        tx.entries["addr"][:40] = [i * 2048 for i in range(40)]
        tx.entries["len"][:40] = lengths
        tx.set_producer(40)
        assert xsk.kick()  # one kick: the budget covers all 40 (more than the default 32)
        assert tx.consumer() == 40
        comp = xsk.completion
        deadline = time.monotonic() + 2
        while comp.producer() < 40 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert comp.producer() == 40
        assert sorted(comp.entries[:40].tolist()) == [i * 2048 for i in range(40)]
        got: list[bytes] = []
        while select.select([rx], [], [], 0.5)[0] and len(got) < 40:
            got.append(rx.recv(2048))
        assert got == [f"datagram {i}".encode() for i in range(40)]
    finally:
        xsk.close()
        rx.close()


def test_rx_through_an_xskmap_redirect(topo: TwoHostTopology, umem: Umem) -> None:
    """RX for tests, and AF_XDP at both ends: what XdpTransport sends from side a arrives in
    side b's AF_XDP socket through xsk_redirect, byte for byte the frames it built."""
    xsks = Map.create(MapType.XSKMAP, 4, 4, 1, name="mdt_xsks")
    xsk = XskSocket.open(
        umem,
        topo.b.ifname,
        tx_size=0,
        rx_size=64,
        fill_size=64,
        completion_size=64,
        netns=topo.b.netns,
    )
    dests = [("239.7.1.1", 47101), ("239.7.1.2", 47102)]
    tx = XdpTransport.open(topo.a.address, dests, mode="copy", netns=topo.a.netns, src_port=47100)
    try:
        xsks.update((0).to_bytes(4, "little"), xsk.fileno().to_bytes(4, "little"))
        assert xsk.refill(umem.frame_addresses()[:64]) == 64
        sent = [(f"hello {i}".encode() * (i + 1), i % 2) for i in range(10)]
        expected = UdpFrames(
            find_interface(topo.a.ifname, topo.a.netns).mac,
            topo.a.address,
            47100,
            dests,
            first_id=tx.frames.next_id,
            # Copy mode leaves the UDP checksum to the device; veth hands it over unfinished.
            udp_checksum=tx.frames.udp_checksum,
        )
        with loader.load(programs.xsk_redirect(xsks.fd), use="ctypes") as prog:
            with topo.b.entered():
                ifindex = socket.if_nametoindex(topo.b.ifname)
                mode = loader.attach(ifindex, prog.fd)
            try:
                for payload, dest in sent:
                    assert tx.offer(payload, dest)
                assert tx.flush() == len(sent)
                got: list[bytes] = []
                deadline = time.monotonic() + 3
                while len(got) < len(sent) and time.monotonic() < deadline:
                    xsk.wake_rx()
                    for addr, length in xsk.receive():
                        frame = bytes(umem.view[addr : addr + length])
                        if frame[12:14] == b"\x08\x00" and frame[23] == 17:  # IPv4 UDP
                            got.append(frame)
                        xsk.refill([addr])
                    time.sleep(0.001)
            finally:
                with topo.b.entered():
                    loader.detach(ifindex, mode, expected_fd=prog.fd)
        assert got == [expected.build(payload, dest) for payload, dest in sent]
        assert xsk.statistics().rx_dropped == 0
    finally:
        tx.close()
        xsk.close()
        xsks.close()
