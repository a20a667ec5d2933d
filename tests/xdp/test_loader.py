"""Loading (bcc or ctypes, with the reason) and XDP attach/detach on a veth in test namespaces,
checked through netlink; nothing is left attached or loaded afterwards."""

from __future__ import annotations

import errno
import importlib.util
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from feeder.net.topology import Host, TwoHostTopology
from tests.privilege import require_root
from xdp import bpf, loader, programs
from xdp.asm import R0, Asm
from xdp.loader import AttachMode, XdpAttachError
from xdp.programs import XDP_DROP, PortFilterMaps, ProgramSpec

PASS_ALL = ProgramSpec(
    "pass_all",
    bpf.ProgType.XDP,
    Asm().mov(R0, programs.XDP_PASS).exit().assemble(),
    "int pass_all(struct xdp_md *ctx) { return XDP_PASS; }\n",
)


def ifindex(host: Host, name: str | None = None) -> int:
    with host.entered(), IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=name or host.ifname)
        return int(index)


@pytest.fixture
def program() -> Iterator[loader.Program]:
    require_root("loading BPF programs needs root")
    with loader.load(PASS_ALL) as prog:
        yield prog
    assert not bpf.prog_exists(prog.id), "program still loaded after close()"


# --- attach / detach ---


@pytest.mark.privileged
def test_auto_attaches_natively_on_veth_and_detaches(
    topo: TwoHostTopology, program: loader.Program
) -> None:
    index = ifindex(topo.b)
    with topo.b.entered():
        assert loader.attached_programs(index) == {}
        with loader.attached(index, program.fd) as mode:
            assert mode is AttachMode.NATIVE
            assert loader.attached_programs(index) == {AttachMode.NATIVE: program.id}
        assert loader.attached_programs(index) == {}


@pytest.mark.privileged
def test_generic_mode_on_request(topo: TwoHostTopology, program: loader.Program) -> None:
    index = ifindex(topo.a)
    with topo.a.entered():
        with loader.attached(index, program.fd, "generic") as mode:
            assert mode is AttachMode.GENERIC
            assert loader.attached_programs(index) == {AttachMode.GENERIC: program.id}
        assert loader.attached_programs(index) == {}


@pytest.mark.privileged
def test_falls_back_to_generic_where_native_is_unsupported(
    topo: TwoHostTopology, program: loader.Program
) -> None:
    lo = ifindex(topo.a, "lo")  # loopback has no native XDP
    with topo.a.entered():
        with pytest.raises(XdpAttachError, match="native mode") as native:
            loader.attach(lo, program.fd, AttachMode.NATIVE)
        assert native.value.errno == errno.EOPNOTSUPP
        assert loader.attached_programs(lo) == {}
        with loader.attached(lo, program.fd) as mode:
            assert mode is AttachMode.GENERIC
            assert loader.attached_programs(lo) == {AttachMode.GENERIC: program.id}
        assert loader.attached_programs(lo) == {}


@pytest.mark.privileged
def test_detaches_when_the_body_raises(topo: TwoHostTopology, program: loader.Program) -> None:
    index = ifindex(topo.b)
    with topo.b.entered():
        with pytest.raises(RuntimeError, match="boom"), loader.attached(index, program.fd):
            assert loader.attached_programs(index)
            raise RuntimeError("boom")
        assert loader.attached_programs(index) == {}


@pytest.mark.privileged
def test_an_existing_program_is_not_replaced(
    topo: TwoHostTopology, program: loader.Program
) -> None:
    index = ifindex(topo.b)
    with loader.load(PASS_ALL) as other, topo.b.entered():
        with loader.attached(index, program.fd, AttachMode.NATIVE):
            with pytest.raises(XdpAttachError) as busy:
                loader.attach(index, other.fd, AttachMode.NATIVE)
            assert busy.value.errno == errno.EBUSY
            # Generic beside native is refused too, with the kernel's explanation.
            with pytest.raises(XdpAttachError, match="generic mode") as both:
                loader.attach(index, other.fd, AttachMode.GENERIC)
            assert both.value.errno == errno.EEXIST
            assert loader.attached_programs(index) == {AttachMode.NATIVE: program.id}
        assert loader.attached_programs(index) == {}


@pytest.mark.privileged
def test_replace_then_guarded_detach_keeps_the_newcomer(
    topo: TwoHostTopology, program: loader.Program
) -> None:
    index = ifindex(topo.b)
    with loader.load(PASS_ALL) as other, topo.b.entered():
        try:
            loader.attach(index, program.fd, AttachMode.NATIVE)
            loader.attach(index, other.fd, AttachMode.NATIVE, replace=True)
            assert loader.attached_programs(index) == {AttachMode.NATIVE: other.id}
            # Detaching "our" program must not remove the one that replaced it.
            with pytest.raises(XdpAttachError) as refused:
                loader.detach(index, AttachMode.NATIVE, expected_fd=program.fd)
            assert refused.value.errno == errno.EEXIST
            assert loader.attached_programs(index) == {AttachMode.NATIVE: other.id}
        finally:
            loader.detach(index, AttachMode.NATIVE)
        assert loader.attached_programs(index) == {}


@pytest.mark.privileged
def test_a_missing_interface_is_reported_clearly(
    topo: TwoHostTopology, program: loader.Program
) -> None:
    with topo.a.entered():
        with pytest.raises(XdpAttachError, match="ifindex 4242") as missing:
            loader.attach(4242, program.fd)
        assert missing.value.errno == errno.ENODEV
        assert "native mode" in str(missing.value) and "generic mode" in str(missing.value)
        with pytest.raises(XdpAttachError, match="XDP state of ifindex 4242") as unknown:
            loader.attached_programs(4242)
        assert unknown.value.errno == errno.ENODEV
    with pytest.raises(ValueError, match="not AUTO"):
        loader.detach(1, AttachMode.AUTO)
    with pytest.raises(ValueError, match="one of auto, native, generic, not 'turbo'"):
        loader.attach(1, program.fd, "turbo")


@pytest.mark.privileged
def test_port_filter_drops_real_traffic_on_the_veth(topo: TwoHostTopology) -> None:
    """Attached to b's veth, the filter drops UDP to one port and passes another."""
    require_root("XDP on a veth")
    dropped_port, passed_port, sent = 31001, 31002, 20
    index = ifindex(topo.b)
    with (
        PortFilterMaps.create() as pf,
        loader.load(programs.port_filter(pf.counts.fd, pf.rules.fd)) as prog,
        topo.b.socket() as rx_dropped,
        topo.b.socket() as rx_passed,
        topo.a.socket() as tx,
    ):
        pf.set_rule(dropped_port, XDP_DROP)
        rx_dropped.bind((topo.b.address, dropped_port))
        rx_passed.bind((topo.b.address, passed_port))
        for rx in (rx_dropped, rx_passed):
            rx.settimeout(2.0)
        with topo.b.entered(), loader.attached(index, prog.fd):
            for i in range(sent):
                tx.sendto(b"drop %d" % i, (topo.b.address, dropped_port))
                tx.sendto(b"pass %d" % i, (topo.b.address, passed_port))
            received = [rx_passed.recv(64) for _ in range(sent)]
        assert received == [b"pass %d" % i for i in range(sent)]
        rx_dropped.setblocking(False)
        with pytest.raises(BlockingIOError):
            rx_dropped.recv(64)
        assert pf.port_packets(dropped_port) == sent
        counters = pf.counters()
        assert counters["dropped"] == sent and counters["matched"] == sent
        assert counters["udp"] >= 2 * sent
    assert not bpf.prog_exists(prog.id)


# --- loader choice ---


def test_ctypes_loader_on_request(program: loader.Program) -> None:
    with loader.load(PASS_ALL, use="ctypes") as prog:
        assert prog.via == "ctypes" and prog.why == "ctypes loader requested"
        assert bpf.prog_info(prog.fd).name == "pass_all"


def test_auto_loader_says_which_path_it_took_and_why(program: loader.Program) -> None:
    status = loader.bcc_status()
    assert program.via == ("bcc" if status.usable else "ctypes")
    assert status.reason in program.why
    if importlib.util.find_spec("bcc") is None:
        assert not status.usable and "bcc" in status.reason


def test_asking_for_bcc_where_it_cannot_work_explains_why() -> None:
    require_root("loading BPF programs needs root")
    unusable = loader.BccStatus(False, "no kernel headers for 6.18 (test)")
    with pytest.raises(loader.LoaderError, match="through bcc: no kernel headers"):
        loader.load(PASS_ALL, use="bcc", status=unusable)
    with loader.load(PASS_ALL, status=unusable) as prog:
        assert prog.via == "ctypes" and "no kernel headers for 6.18 (test)" in prog.why
    with pytest.raises(ValueError, match="'auto', 'bcc' or 'ctypes'"):
        loader.load(PASS_ALL, use="libbpf")  # type: ignore[arg-type]


def _missing_bcc() -> types.ModuleType:
    raise ImportError("No module named 'bcc'")


def test_bcc_probe_explains_a_missing_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "SYSTEM_DIST_PACKAGES", tmp_path)
    status = loader.probe_bcc(_missing_bcc, "6.18.0-test", {})
    assert not status.usable and "apt-get install python3-bpfcc" in status.reason
    # Installed for the system Python but invisible to this virtualenv: say so.
    (tmp_path / "bcc").mkdir()
    status = loader.probe_bcc(_missing_bcc, "6.18.0-test", {})
    assert not status.usable and "--system-site-packages" in status.reason


def test_bcc_probe_explains_missing_kernel_headers() -> None:
    fake_bcc = types.ModuleType("bcc")
    release = "0.0.0-mdt-no-such-kernel"
    status = loader.probe_bcc(lambda: fake_bcc, release, {})
    assert not status.usable
    assert f"no kernel headers for {release}" in status.reason
    assert f"/lib/modules/{release}/build" in status.reason and "BCC_KERNEL_SOURCE" in status.reason
    bad = loader.probe_bcc(lambda: fake_bcc, release, {"BCC_KERNEL_SOURCE": "/nonexistent/x"})
    assert "BCC_KERNEL_SOURCE=/nonexistent/x is not a directory" in bad.reason


def test_bcc_probe_reports_a_failed_trial_compile(tmp_path: Path) -> None:
    class FailingBPF:
        def __init__(self, text: str) -> None:
            raise Exception("failed to compile BPF module <text>\nmore detail")

    fake_bcc = types.ModuleType("bcc")
    fake_bcc.BPF = FailingBPF  # type: ignore[attr-defined]
    status = loader.probe_bcc(lambda: fake_bcc, "6.18", {"BCC_KERNEL_SOURCE": str(tmp_path)})
    assert not status.usable
    assert "trial compile failed: failed to compile BPF module <text>" in status.reason
    assert "more detail" not in status.reason


def test_program_close_is_idempotent_and_final(program: loader.Program) -> None:
    program.close()
    program.close()
    with pytest.raises(ValueError, match="closed"):
        _ = program.fd
