"""Multicast socket setup: input validation, absent interface addresses, buffer read-back.

These run in the current namespace and send nothing; traffic tests live in test_veth.py.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from feeder.net import mcast
from feeder.net.mcast import BUFFER_MAX, InterfaceAddressError, open_receiver, open_sender
from tests.privilege import require_root

# TEST-NET-1 (RFC 5737): documentation-only, so no interface here has it.
ABSENT = "192.0.2.77"
GROUP = "239.255.42.1"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("10.0.0.1", "not a multicast address"),
        ("255.255.255.255", "not a multicast address"),
        ("banana", "not an IPv4 address"),
        ("ff02::1", "not an IPv4 address"),
        (None, "IPv4 address"),
    ],
)
def test_bad_group(group: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_receiver(group, 5000, "127.0.0.1")


@pytest.mark.parametrize("port", [0, -1, 65536, True, "5000", 50.0])
def test_bad_port(port: int) -> None:
    with pytest.raises(ValueError, match="UDP port"):
        open_receiver(GROUP, port, "127.0.0.1")


@pytest.mark.parametrize("addr", ["239.1.1.1", "255.255.255.255", "localhost", "1.2.3"])
def test_bad_interface_address_syntax(addr: str) -> None:
    with pytest.raises(ValueError, match="interface address"):
        open_sender(addr)
    with pytest.raises(ValueError, match="interface address"):
        open_receiver(GROUP, 5000, addr)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 256}, "TTL"),
        ({"ttl": -1}, "TTL"),
        ({"sndbuf": 0}, "sndbuf"),
        ({"sndbuf": BUFFER_MAX + 1}, "sndbuf"),
    ],
)
def test_bad_sender_options(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_sender("127.0.0.1", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "opener",
    [
        lambda: open_sender(ABSENT),
        lambda: open_receiver(GROUP, 5000, ABSENT),
    ],
    ids=["sender", "receiver"],
)
def test_absent_interface_address_is_a_clear_error_and_leaks_nothing(
    opener: Callable[[], mcast.Opened],
) -> None:
    before = _open_fds()
    with pytest.raises(InterfaceAddressError, match=f"no interface .* has address {ABSENT}"):
        opener()
    assert _open_fds() == before


def test_sender_options_are_applied() -> None:
    sock, report = open_sender("127.0.0.1", ttl=7, loop=True, sndbuf=65536, blocking=False)
    with sock:
        ip = socket.IPPROTO_IP
        assert sock.getsockopt(ip, socket.IP_MULTICAST_TTL) == 7
        assert sock.getsockopt(ip, socket.IP_MULTICAST_LOOP) == 1
        assert sock.getsockopt(ip, socket.IP_MULTICAST_IF, 4) == socket.inet_aton("127.0.0.1")
        assert sock.getblocking() is False
        assert report.option == "SO_SNDBUF"
        assert report.granted == sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def test_receiver_is_bound_to_the_group() -> None:
    sock, _report = open_receiver(GROUP, 45123, "127.0.0.1")
    with sock:
        assert sock.getsockname() == (GROUP, 45123)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1


def test_uncapped_request_is_granted_doubled() -> None:
    limit = mcast.read_sysctl("net.core.rmem_max")
    assert limit is not None and limit >= 4096
    sock, report = open_receiver(GROUP, 45124, "127.0.0.1", rcvbuf=4096)
    with sock:
        assert report.requested == 4096
        assert report.granted == 8192 == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert not report.capped and not report.forced and report.fix == ""
        assert report.limit == limit


def test_capped_request_names_the_sysctl_and_the_fix() -> None:
    limit = mcast.read_sysctl("net.core.rmem_max")
    assert limit is not None
    if 2 * limit > BUFFER_MAX:
        pytest.skip(f"net.core.rmem_max={limit} too large to exceed with a valid request")
    sock, report = open_receiver(GROUP, 45125, "127.0.0.1", rcvbuf=2 * limit)
    with sock:
        assert report.capped and not report.forced
        assert report.granted == 2 * limit  # Linux: capped at rmem_max, then doubled
        assert f"net.core.rmem_max is {limit}" in report.fix
        assert "hosttune apply" in report.fix
        assert f"sysctl -w net.core.rmem_max={2 * limit}" in report.fix
        assert report.fix in str(report)


def test_unreadable_limit_is_said_so() -> None:
    sock, report = open_sender("127.0.0.1", sndbuf=BUFFER_MAX, read=lambda _name: None)
    with sock:
        assert report.capped
        assert report.limit is None
        assert "net.core.wmem_max is unreadable" in report.fix


def test_default_buffer_is_reported_without_a_request() -> None:
    sock, report = open_sender("127.0.0.1")
    with sock:
        assert report.requested is None and not report.capped
        assert report.granted == sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


@pytest.mark.privileged
def test_forced_buffer_passes_the_cap() -> None:
    require_root("SO_RCVBUFFORCE needs CAP_NET_ADMIN")
    limit = mcast.read_sysctl("net.core.rmem_max")
    assert limit is not None
    want = min(2 * limit, BUFFER_MAX // 2)
    sock, report = open_receiver(GROUP, 45126, "127.0.0.1", rcvbuf=want, force_buffer=True)
    with sock:
        assert report.forced and not report.capped
        assert report.granted == 2 * want


def test_read_sysctl(tmp_path: Path) -> None:
    root = tmp_path
    (root / "net" / "core").mkdir(parents=True)
    (root / "net" / "core" / "rmem_max").write_text("212992\n")
    assert mcast.read_sysctl("net.core.rmem_max", root) == 212992
    assert mcast.read_sysctl("net.core.wmem_max", root) is None
