"""``feeder demo`` with loss injected on both lines (root; runs in CI): the report shows the A/B
arbitration per line and the re-requests, nothing is missing and every book matches."""

from __future__ import annotations

from tests.feeder.test_demo_e2e import demo
from tests.privilege import require_root


def test_demo_reports_arbitration_and_recovery() -> None:
    require_root("the demo builds network namespaces")
    report = demo(
        "--duration", "4", "--symbols", "2", "--rate", "250", "--drop-a", "7:3", "--drop-b", "11:5"
    )
    assert report["received"] == report["sent"] > 0
    assert report["missing_messages"] == 0 and report["duplicates"] == 0
    ab, rec = report["ab"], report["recovery"]
    a, b = ab["lines"]["a"], ab["lines"]["b"]
    assert a["lost_messages"] > 0 and b["lost_messages"] > 0  # the kernel dropped on both lines
    assert a["filled_by_other_line"] > 0 and b["filled_by_other_line"] > 0
    # Each packet reached the feed once: first from a line, or by re-request.
    recovered_packets = rec["receiver"]["recovered_packets"]
    assert a["first"] + b["first"] + recovered_packets == report["packets"]
    # What both lines lost (first_seq ≡ 3 mod 7 and ≡ 5 mod 11) came back by re-request.
    assert rec["recovered_messages"] == ab["lost_on_both_messages"]
    assert rec["requests"] > 0 or ab["lost_on_both_messages"] == 0
    assert rec["unrecoverable_messages"] == 0
    assert rec["feeder"]["served_messages"] >= rec["recovered_messages"]
    assert rec["feeder"]["refused"] == {"rate": 0, "session": 0, "range": 0}
    assert ab["line_b"].startswith("4 channels on 239.200.0.1")
    assert set(report["loss_injected"]) == {"a", "b"}
    for name, ex in report["exchanges"].items():
        assert ex["books_mismatched"] == [], (name, ex)
