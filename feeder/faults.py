"""The fault matrix (``feeder demo --faults [NAME...]``): inject, then judge from the reports.

Each fault says how it is injected (a simulator fault, a receiver or feeder option, a restart)
and how to read the run's reports: what was detected, what was recovered, and whether both
happened. Every fault also needs the run's common ground truth: no message missing at the end
and the receiver's books equal to the simulator's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from feeder.listen.dropfilter import DropRule

Report = dict[str, Any]
Judge = Callable[[Report], tuple[bool, str, bool, str]]  # detected?, how, recovered?, how


def _ex(r: Report, name: str) -> Report:
    ex: Report = r["exchanges"].get(name, {})
    return ex


def _books_ok(r: Report, name: str) -> bool:
    ex = _ex(r, name)
    return bool(ex) and not ex["books_mismatched"] and ex["books_equal"] > 0


def _not_live(r: Report, name: str) -> str:
    """The feeder's symbols that were not live at the end (a resync still in flight)."""
    waiting = _ex(r, name).get("symbols_not_live") or []
    return f" (not live at the end in the feeder: {waiting})" if waiting else ""


def _others_flow(r: Report, name: str) -> bool:
    return all(e["messages"] > 0 for n, e in r["exchanges"].items() if n != name)


@dataclass(frozen=True)
class Fault:
    name: str
    injected: str
    judge: Judge
    sim: tuple[str, ...] = ()  # simulator faults, EXCHANGE:KIND[@EVENTS][/SECONDS]
    listen: tuple[str, ...] = ()  # extra `feeder listen` arguments
    run: tuple[str, ...] = ()  # extra `feeder run` arguments
    exchange: str | None = None  # the exchange it needs in the run
    restart: bool = False  # stop the feeder half way and start a new session
    drop_a: str | None = None
    drop_b: str | None = None


def _exchange_fault(
    name: str, exchange: str, kind: str, what: str, detected: Callable[[Report], tuple[bool, str]]
) -> Fault:
    def judge(r: Report) -> tuple[bool, str, bool, str]:
        ok, how = detected(r)
        rec = _books_ok(r, exchange) and _others_flow(r, exchange)
        return (
            ok,
            how,
            rec,
            (
                f"{exchange} books equal the simulator's ({_ex(r, exchange).get('books_equal', 0)} "
                f"symbols), other exchanges kept flowing"
                if rec
                else f"{exchange} books: {_ex(r, exchange).get('books_mismatched')} differ"
                + _not_live(r, exchange)
            ),
        )

    return Fault(name, what, judge, sim=(f"{exchange}:{kind}",), exchange=exchange)


def _counter(exchange: str, key: str, label: str) -> Callable[[Report], tuple[bool, str]]:
    def detected(r: Report) -> tuple[bool, str]:
        n = _ex(r, exchange).get(key, 0)
        n = sum(n.values()) if isinstance(n, dict) else n
        return n >= 1, f"{exchange} {label} = {n}"

    return detected


def _loss_one_line(r: Report) -> tuple[bool, str, bool, str]:
    lines = r.get("ab", {}).get("lines", {})
    lost_a = lines.get("a", {}).get("lost_messages", 0)
    filled = lines.get("a", {}).get("filled_by_other_line", 0)
    return (
        lost_a > 0,
        f"line A lost {lost_a} messages",
        filled > 0 and r["missing_messages"] == 0,
        f"{filled} filled from line B, {r['missing_messages']} missing at the end",
    )


def _loss_both(r: Report) -> tuple[bool, str, bool, str]:
    both = r.get("ab", {}).get("lost_on_both_messages", 0)
    rec = r.get("recovery", {})
    got = rec.get("recovered_messages", 0)
    return (
        both > 0,
        f"{both} messages lost on both lines",
        got > 0 and r["missing_messages"] == 0,
        f"{got} recovered by {rec.get('requests', 0)} re-requests, "
        f"{r['missing_messages']} missing at the end" + _unrecoverable(rec),
    )


def _slow_receiver(r: Report) -> tuple[bool, str, bool, str]:
    drops = r["drops_detail"].get("rx.RcvbufErrors", 0) + r["drops_detail"].get("RcvbufErrors", 0)
    rec = r.get("recovery", {})
    return (
        drops > 0,
        f"receiver paused {r.get('receiver_paused_s', 0)} s: the kernel dropped {drops} "
        "datagrams (RcvbufErrors)",
        r["missing_messages"] == 0,
        f"{rec.get('recovered_messages', 0)} recovered, {r['missing_messages']} missing"
        + _unrecoverable(rec),
    )


def _unrecoverable(rec: dict[str, Any]) -> str:
    """Why what is missing was given up (older_than_buffer, no_answer, ...), if anything."""
    why = rec.get("unrecoverable") or {}
    return f" (given up: {', '.join(f'{k} {v}' for k, v in why.items())})" if why else ""


def _restart(r: Report) -> tuple[bool, str, bool, str]:
    sessions = r.get("sessions", 0)
    eq = all(_books_ok(r, n) for n in r["exchanges"])
    return (
        sessions >= 2,
        f"receiver saw {sessions} sessions (new session id, sequences restart)",
        eq and r["missing_messages"] == 0,
        "books rebuilt from the new session's snapshots, equal to the simulator's"
        if eq
        else "books differ after the restart",
    )


def _late_sender(r: Report) -> tuple[bool, str, bool, str]:
    queued = r.get("queued_without_sender", 0)
    return (
        queued > 0,
        f"{queued} packets queued before the sender existed",
        r["received"] == r["sent"] and r["missing_messages"] == 0,
        f"received {r['received']} of {r['sent']}, {r['missing_messages']} missing",
    )


def _no_xdp(r: Report) -> tuple[bool, str, bool, str]:
    said = [e for e in r["send_path_events"] if "xdp" in e and "unavailable" in e]
    return (
        bool(said),
        "; ".join(said) or "no xdp event",
        r["send_path"].startswith("udp") and r["received"] == r["sent"],
        f"sent through {r['send_path']}: received {r['received']} of {r['sent']}",
    )


def matrix(rate: int) -> dict[str, Fault]:
    """Every fault, with injection points scaled to the per-exchange event rate."""
    at = max(rate * 2, 50)  # ~2 s in: books are live, the stream is flowing
    return {
        f.name: f
        for f in [
            _exchange_fault(
                "disconnect",
                "binance",
                f"drop_connection@{at}",
                "simulator closes binance's connection mid-stream",
                _counter("binance", "reconnects", "reconnects"),
            ),
            _exchange_fault(
                "sequence_gap",
                "okx",
                f"skip_sequence@{at}",
                "simulator withholds one okx book update (seqId gap)",
                _counter("okx", "gaps", "gaps"),
            ),
            _exchange_fault(
                "checksum_mismatch",
                "kraken",
                f"corrupt_checksum@{at}",
                "simulator sends one kraken update with a wrong CRC32",
                _counter("kraken", "checksum_errors", "checksum errors"),
            ),
            _exchange_fault(
                "malformed",
                "bybit",
                f"malformed@{at}",
                "simulator sends bybit two frames that are not its format",
                _counter("bybit", "parse_errors", "parse errors"),
            ),
            _exchange_fault(
                "exchange_down",
                "coinbase",
                f"down@{at}/3",
                "coinbase closes every connection and refuses new ones for 3 s",
                _counter("coinbase", "reconnects", "reconnects"),
            ),
            Fault(
                "slow_receiver",
                "receiver stops reading for 1 s with a 16 KiB socket buffer",
                _slow_receiver,
                listen=("--pause-after", "300", "--pause-s", "1", "--rcvbuf", "16384"),
                # The stall is repairable only while the feeder still holds it: at the ~2k
                # packets/s per channel seen on fast hosts, 1 s fits 8192 slots with room.
                run=("--recovery-buffer", "8192"),
            ),
            Fault(
                "loss_one_line",
                "line A drops data packets with first_seq % 5 == 2 "
                "(kernel socket filter at the receiver)",
                _loss_one_line,
                drop_a="5:2",
            ),
            Fault(
                "loss_both_lines",
                "line A drops first_seq % 7 == 3, line B first_seq % 11 == 5",
                _loss_both,
                drop_a="7:3",
                drop_b="11:5",
            ),
            Fault(
                "feeder_restart",
                "feeder run stopped half way and started again (new session)",
                _restart,
                listen=("--min-sessions", "2"),
                restart=True,
            ),
            Fault(
                "late_sender",
                "feeder run creates its sender 1.5 s after the exchanges started",
                _late_sender,
                run=("--sender-delay", "1.5"),
            ),
            Fault(
                "xdp_unavailable",
                "AF_XDP made unavailable (as on a host without it)",
                _no_xdp,
                run=("--xdp-unavailable", "forced by the fault matrix"),
            ),
        ]
    }


@dataclass
class Plan:
    faults: list[Fault]
    sim: list[str] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)
    restart: bool = False
    drop_a: DropRule | None = None
    drop_b: DropRule | None = None

    @classmethod
    def build(cls, names: Sequence[str], rate: int) -> Plan:
        known = matrix(rate)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r} (known: {', '.join(known)})")
        faults = [known[n] for n in (names or list(known))]
        plan = cls(faults)
        drops: dict[str, str] = {}
        for f in faults:
            plan.sim += list(f.sim)
            plan.listen += list(f.listen)
            plan.run += list(f.run)
            plan.restart |= f.restart
            for line, rule in (("a", f.drop_a), ("b", f.drop_b)):
                if rule is not None:
                    drops.setdefault(line, rule)  # the first fault naming a line sets its rule
        plan.drop_a = DropRule.parse(drops["a"]) if "a" in drops else None
        plan.drop_b = DropRule.parse(drops["b"]) if "b" in drops else None
        return plan

    def exchanges(self) -> set[str]:
        return {f.exchange for f in self.faults if f.exchange}

    def judge(self, report: Report) -> list[dict[str, Any]]:
        out = []
        for f in self.faults:
            detected, how, recovered, rec_how = f.judge(report)
            out.append(
                {
                    "name": f.name,
                    "injected": f.injected,
                    "detected": how,
                    "recovered": rec_how,
                    "ok": detected and recovered,
                }
            )
        return out
