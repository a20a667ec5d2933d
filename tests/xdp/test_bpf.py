"""bpf(2) through ctypes: the verifier accepts every program, explains rejections; map CRUD,
per-CPU maps, pinning on a bpf filesystem; errors that say what went wrong."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.privilege import require_root
from xdp import bpf, btf, maps, programs, tracing
from xdp.asm import DW, FP, R0, R1, R2, Asm, W
from xdp.bpf import MapType, ProgType, UpdateFlag
from xdp.maps import Map, u32, u64
from xdp.programs import ProgramSpec

pytestmark = pytest.mark.privileged


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root("bpf(2) needs root (CAP_BPF/CAP_SYS_ADMIN)")


@pytest.fixture
def every_program() -> Iterator[list[ProgramSpec]]:
    """Every program the package builds, with real maps behind its map fds."""
    layout = tracing.kfree_skb_layout(btf.vmlinux())
    with (
        Map.create(MapType.XSKMAP, 4, 4, 64, name="t_xsks") as xsks,
        programs.PortFilterMaps.create() as pf,
        Map.create(MapType.PERCPU_HASH, 4, 8, 64, name="t_drops") as drops,
        Map.create(MapType.HASH, 8, 1, 8, name="t_socks") as socks,
    ):
        assert layout.sock_arg is not None, "this kernel's kfree_skb has no rx_sk argument"
        yield [
            programs.xsk_redirect(xsks.fd),
            programs.port_filter(pf.counts.fd, pf.rules.fd),
            programs.drop_counter(drops.fd, reason_arg=layout.reason_arg),
            programs.drop_counter(
                drops.fd,
                reason_arg=layout.reason_arg,
                socket_filter=programs.SocketFilter(
                    socks.fd, layout.sock_arg, layout.cookie_offset
                ),
                name="drop_by_socket",
            ),
        ]


def test_the_verifier_accepts_every_program(every_program: list[ProgramSpec]) -> None:
    for spec in every_program:
        fd, log = bpf.prog_load_log(spec.prog_type, spec.insns, name=spec.name, log_level=2)
        try:
            info = bpf.prog_info(fd)
            assert info.name == spec.name and info.type == spec.prog_type
            assert len(info.map_ids) >= 1  # the map fds were resolved to the maps
            assert "processed" in log  # verifier statistics for an accepted program
        finally:
            os.close(fd)
        assert not bpf.prog_exists(info.id), f"{spec.name} still loaded after its fd closed"


def test_a_rejected_program_raises_with_the_verifier_log() -> None:
    a = Asm()
    a.ldx(W, R1, R1, 0)  # r1 = ctx->data
    a.ldx(DW, R0, R1, 0)  # read packet bytes without checking data_end first
    a.exit()
    with pytest.raises(bpf.VerifierError) as caught:
        bpf.prog_load(ProgType.XDP, a.assemble(), name="unchecked")
    err = caught.value
    assert err.errno == errno.EACCES
    assert "invalid access to packet" in err.log
    assert "invalid access to packet" in str(err) and "'unchecked'" in str(err)


def test_reading_an_uninitialised_register_is_explained() -> None:
    with pytest.raises(bpf.VerifierError) as caught:
        bpf.prog_load(ProgType.XDP, Asm().exit().assemble(), name="no_r0")
    assert "R0 !read_ok" in caught.value.log


def test_malformed_input_is_refused_before_the_kernel() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        bpf.prog_load(ProgType.XDP, b"\x95\0\0", name="short")
    with pytest.raises(ValueError, match="at most 15 characters"):
        bpf.prog_load(ProgType.XDP, Asm().mov(R0, 2).exit().assemble(), name="x" * 16)
    with pytest.raises(ValueError, match="max_entries"):
        bpf.map_create(MapType.HASH, 4, 4, 0)


def test_an_unprivileged_process_gets_a_clear_permission_error() -> None:
    """A forked child that dropped root tries to load a program and reports the error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                bpf.prog_load(ProgType.XDP, Asm().mov(R0, 2).exit().assemble(), name="p")
                message = "loaded"
            except bpf.BPFError as exc:
                message = f"{exc.errno} {exc}"
            os.write(write_end, message.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        out = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.startswith(f"{errno.EPERM} ") and "needs root" in out, out


def test_hash_map_crud_and_iteration() -> None:
    with Map.create(MapType.HASH, 4, 8, 16, name="t_hash") as m:
        assert m.lookup(u32(1)) is None and u32(1) not in m
        for k in range(5):
            m.update(u32(k), u64(k * 10))
        assert m.lookup(u32(3)) == u64(30) and u32(3) in m
        assert sorted(m.keys()) == sorted(u32(k) for k in range(5))
        assert dict(m.items()) == {u32(k): u64(k * 10) for k in range(5)}
        m.update(u32(3), u64(33), UpdateFlag.EXIST)
        assert m.lookup(u32(3)) == u64(33)
        with pytest.raises(bpf.BPFError) as exists:
            m.update(u32(3), u64(0), UpdateFlag.NOEXIST)
        assert exists.value.errno == errno.EEXIST
        with pytest.raises(bpf.BPFError) as missing:
            m.update(u32(99), u64(0), UpdateFlag.EXIST)
        assert missing.value.errno == errno.ENOENT
        assert m.delete(u32(3)) is True and m.delete(u32(3)) is False
        assert sorted(m) == sorted(u32(k) for k in (0, 1, 2, 4))
        info = bpf.map_info(m.fd)
        assert (info.type, info.key_size, info.value_size, info.name) == (1, 4, 8, "t_hash")
    assert m.closed
    with pytest.raises(ValueError, match="closed"):
        m.lookup(u32(0))


def test_a_full_map_says_so() -> None:
    with Map.create(MapType.HASH, 4, 4, 2) as m:
        m.update(u32(1), u32(1))
        m.update(u32(2), u32(2))
        with pytest.raises(bpf.BPFError) as full:
            m.update(u32(3), u32(3))
        assert full.value.errno == errno.E2BIG


def test_keys_and_values_of_the_wrong_size_or_type_are_refused() -> None:
    with Map.create(MapType.ARRAY, 4, 8, 4) as m:
        with pytest.raises(ValueError, match="key is 8 bytes, the map needs 4"):
            m.lookup(u64(1))
        with pytest.raises(ValueError, match="value is 4 bytes, the map needs 8"):
            m.update(u32(0), u32(1))
        with pytest.raises(TypeError, match="must be bytes"):
            m.update(0, u64(1))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not per-CPU"):
            m.update_percpu(u32(0), [u64(1)])


def test_array_maps_start_zeroed_and_cannot_delete() -> None:
    with Map.create(MapType.ARRAY, 4, 8, 4) as m:
        assert [m.lookup(u32(i)) for i in range(4)] == [u64(0)] * 4
        assert m.lookup(u32(4)) is None
        with pytest.raises(bpf.BPFError) as caught:
            m.delete(u32(0))
        assert caught.value.errno == errno.EINVAL


def test_percpu_maps_hold_one_value_per_possible_cpu() -> None:
    ncpus = bpf.possible_cpus()
    assert ncpus == os.cpu_count() or ncpus >= 1
    with Map.create(MapType.PERCPU_ARRAY, 4, 8, 2) as m:
        m.update_percpu(u32(1), [u64(i + 1) for i in range(ncpus)])
        assert m.lookup_percpu(u32(1)) == [u64(i + 1) for i in range(ncpus)]
        assert m.sum_percpu(u32(1)) == ncpus * (ncpus + 1) // 2
        assert m.sum_percpu(u32(0)) == 0
        with pytest.raises(TypeError, match="per-CPU: use lookup_percpu"):
            m.lookup(u32(1))
        with pytest.raises(ValueError, match="CPUs are possible"):
            m.update_percpu(u32(1), [u64(0)] * (ncpus + 1))


def test_pin_and_reopen_share_one_map(bpffs: Path) -> None:
    pin = bpffs / "t_pinned"
    with Map.create(MapType.HASH, 4, 4, 8, name="t_pin") as m:
        m.pin(pin)
        map_id = bpf.map_info(m.fd).id
        m.update(u32(1), u32(100))
    # The pin alone keeps the map alive after its creator's fd is closed.
    with Map.from_pinned(pin) as again:
        assert bpf.map_info(again.fd).id == map_id
        assert (again.key_size, again.value_size, again.name) == (4, 4, "t_pin")
        assert again.lookup(u32(1)) == u32(100)
        again.update(u32(2), u32(200))
        with Map.from_pinned(pin) as third:
            assert third.lookup(u32(2)) == u32(200)
        with pytest.raises(FileExistsError, match="already exists"):
            again.pin(pin)
    pin.unlink()
    with pytest.raises(bpf.BPFError) as gone:
        Map.from_pinned(pin)
    assert gone.value.errno == errno.ENOENT


def test_pinning_outside_a_bpf_filesystem_is_explained(tmp_path: Path) -> None:
    with Map.create(MapType.ARRAY, 4, 4, 1) as m, pytest.raises(OSError, match="not a bpf fil"):
        m.pin(tmp_path / "pin")
    assert not (tmp_path / "pin").exists()


def test_ensure_bpffs_mounts_once(bpffs: Path) -> None:
    assert maps.is_bpffs(bpffs)
    assert maps.ensure_bpffs(bpffs) is False  # already one: nothing to do
    with pytest.raises(NotADirectoryError):
        maps.ensure_bpffs(bpffs.parent / "mdt-does-not-exist")


def test_prog_test_run_runs_the_program_in_the_kernel() -> None:
    code = Asm().mov(R0, programs.XDP_DROP).exit().assemble()
    fd = bpf.prog_load(ProgType.XDP, code, name="t_drop")
    try:
        result = bpf.prog_test_run(fd, bytes(64), repeat=3)
        assert result.retval == programs.XDP_DROP and result.data == bytes(64)
        assert bpf.prog_info(fd).id in bpf.prog_ids()
    finally:
        os.close(fd)


def test_stack_access_out_of_bounds_is_rejected() -> None:
    a = Asm()
    a.st(DW, FP, -520, 0)  # the stack is 512 bytes
    a.mov(R0, 2)
    a.mov(R2, R1)
    a.exit()
    with pytest.raises(bpf.VerifierError) as caught:
        bpf.prog_load(ProgType.XDP, a.assemble(), name="deep_stack")
    assert "stack" in caught.value.log
