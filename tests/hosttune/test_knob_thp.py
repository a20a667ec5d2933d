"""The transparent-huge-pages knob on fake sysfs trees (and read-only on this kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosttune.change import SetValue
from hosttune.host import Host
from hosttune.knobs.thp import BASE, ThpKnob, selected
from hosttune.profile import THP_DEFRAG, THP_MODES
from hosttune.result import Status
from tests.hosttune.fakehost import FakeNic, fake_host, profile

KNOB = ThpKnob()
ENABLED, DEFRAG = f"{BASE}/enabled", f"{BASE}/defrag"
NEVER = profile(thp={"enabled": "never", "defrag": "never"})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("always madvise [never]", "never"),
        ("always defer defer+madvise [madvise] never\n", "madvise"),
        ("always defer [defer+madvise] madvise never\n", "defer+madvise"),
        # Some kernels (and a fake tree after a write) print only the current value.
        ("never\n", "never"),
        ("madvise", "madvise"),
        ("  always  \n", "always"),
        ("", ""),
    ],
)
def test_selected(text: str, value: str) -> None:
    assert selected(text) == value


def test_check_pass_and_fail(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {
            ENABLED: "always madvise [never]\n",
            DEFRAG: "always defer defer+madvise [madvise] never\n",
        },
    )
    enabled, defrag = KNOB.check(host, NEVER)
    assert (enabled.id, enabled.title) == ("thp.enabled", "THP enabled")
    assert (enabled.status, enabled.observed, enabled.expected, enabled.fix) == (
        Status.PASS,
        "never",
        "never",
        "",
    )
    assert defrag.id == "thp.defrag"
    assert (defrag.status, defrag.observed, defrag.expected) == (Status.FAIL, "madvise", "never")
    assert defrag.fix == f"echo never > {DEFRAG} (or `hosttune apply`)"
    assert not defrag.reboot


def test_check_value_only_format(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {ENABLED: "madvise\n", DEFRAG: "never\n"})
    rows = KNOB.check(host, profile(thp={"enabled": "madvise", "defrag": "never"}))
    assert [r.status for r in rows] == [Status.PASS, Status.PASS]


def test_missing_thp_directory_is_two_skip_rows(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {})
    rows = KNOB.check(host, NEVER)
    assert [(r.id, r.status) for r in rows] == [
        ("thp.enabled", Status.SKIP),
        ("thp.defrag", Status.SKIP),
    ]
    assert all("kernel without THP" in r.observed and "does not exist" in r.observed for r in rows)
    assert [r.expected for r in rows] == ["never", "never"]
    assert KNOB.plan(host, NEVER) == []


def test_one_missing_file_skips_only_its_row(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {ENABLED: "always [madvise] never\n"})
    enabled, defrag = KNOB.check(host, NEVER)
    assert enabled.status is Status.FAIL and defrag.status is Status.SKIP
    assert KNOB.plan(host, NEVER) == [SetValue(ENABLED, old="madvise", new="never")]


def test_unreadable_file_is_a_skip_row(tmp_path: Path) -> None:
    (tmp_path / ENABLED.lstrip("/")).mkdir(parents=True)
    host = fake_host(tmp_path, {DEFRAG: "[never]\n"})
    enabled, defrag = KNOB.check(host, NEVER)
    assert enabled.status is Status.SKIP and "Is a directory" in enabled.observed
    assert defrag.status is Status.PASS


@pytest.mark.parametrize("garbled", ["", "\n", "[]", "always [madvise never", "???"])
def test_garbled_content_fails_and_shows_it(tmp_path: Path, garbled: str) -> None:
    host = fake_host(tmp_path, {ENABLED: garbled, DEFRAG: "[never]"})
    enabled, defrag = KNOB.check(host, NEVER)
    assert enabled.status is Status.FAIL and enabled.observed == selected(garbled)
    assert defrag.status is Status.PASS


def test_plan_only_for_non_compliant_values(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {
            ENABLED: "always [madvise] never\n",
            DEFRAG: "always defer defer+madvise madvise [never]\n",
        },
    )
    assert KNOB.plan(host, NEVER) == [SetValue(ENABLED, old="madvise", new="never")]
    both = profile(thp={"enabled": "always", "defrag": "defer"})
    assert KNOB.plan(host, both) == [
        SetValue(ENABLED, old="madvise", new="always"),
        SetValue(DEFRAG, old="never", new="defer"),
    ]


def test_plan_do_check_undo(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {
            ENABLED: "always [madvise] never\n",
            DEFRAG: "always defer defer+madvise [madvise] never\n",
        },
    )
    changes = KNOB.plan(host, NEVER)
    assert len(changes) == 2 and all(c.runtime for c in changes)
    for c in changes:
        c.do(host)
    assert [r.status for r in KNOB.check(host, NEVER)] == [Status.PASS, Status.PASS]
    assert KNOB.plan(host, NEVER) == []
    KNOB.revert(host, changes)
    # sysfs takes the bare value back; the fake file holds what was written.
    assert selected(host.read(ENABLED)) == "madvise"
    assert selected(host.read(DEFRAG)) == "madvise"
    assert [r.status for r in KNOB.check(host, NEVER)] == [Status.FAIL, Status.FAIL]


def test_the_running_kernels_thp_files() -> None:
    """Read-only: this kernel's bracketed form is read. Other tests may change the live value
    meanwhile, so each row is judged by what that row itself observed."""
    host = Host(root=Path("/"), nic=FakeNic(), allow_commands=False)
    assert "[" in Path(ENABLED).read_text()  # the form this kernel prints
    for mode in THP_MODES:
        enabled, defrag = KNOB.check(host, profile(thp={"enabled": mode}))
        assert enabled.observed in THP_MODES and defrag.observed in THP_DEFRAG
        assert (enabled.status is Status.PASS) is (enabled.observed == mode)
        for change in KNOB.plan(host, profile(thp={"enabled": mode})):
            assert isinstance(change, SetValue) and change.path in (ENABLED, DEFRAG)
            assert (
                change.old in THP_DEFRAG and change.new in THP_DEFRAG and change.old != change.new
            )
