"""Checks of user-supplied network parameters, raising ``ValueError`` with a clear message."""

from __future__ import annotations

import ipaddress


def int_in(value: object, low: int, high: int, what: str) -> int:
    """``value`` if it is an ``int`` (not a bool) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} {value!r} must be an integer in {low}..{high}")
    return value


def port(value: object) -> int:
    """A UDP port number 1..65535."""
    return int_in(value, 1, 65535, "UDP port")


def ipv4(value: object, what: str) -> ipaddress.IPv4Address:
    """``value`` parsed as a dotted-quad IPv4 address."""
    if not isinstance(value, str):
        raise ValueError(f"{what} {value!r} must be an IPv4 address string")
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an IPv4 address") from None


def group(value: object) -> str:
    """An IPv4 multicast group address."""
    addr = ipv4(value, "multicast group")
    if not addr.is_multicast:
        raise ValueError(
            f"multicast group {addr} is not a multicast address (must be in 224.0.0.0/4, "
            "e.g. 239.1.1.1)"
        )
    return str(addr)


def iface_addr(value: object) -> str:
    """An address that can name a local interface: IPv4 unicast, or 0.0.0.0 (routing decides)."""
    addr = ipv4(value, "interface address")
    if addr.is_multicast or addr == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(
            f"interface address {addr} must be the unicast address of a local interface"
        )
    return str(addr)


def destination(value: object) -> tuple[str, int]:
    """An (IPv4 address, port) pair."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError(f"destination {value!r} must be an (IPv4 address, port) pair")
    return str(ipv4(value[0], "destination address")), port(value[1])
