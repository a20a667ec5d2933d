"""The README documents every hosttune check and every feeder command (kept true by this test)."""

from __future__ import annotations

import re
from pathlib import Path

from feeder.cli import _parser as feeder_parser
from hosttune.knobs import all_knobs

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_first_two_commands_are_demo_and_test() -> None:
    commands = re.findall(r"^make (\w+)", README, re.M)
    assert commands[:2] == ["demo", "test"]


def test_every_knob_is_documented() -> None:
    for knob in all_knobs():
        assert f"`{knob.id}." in README, f"README does not document the {knob.id} checks"


def test_every_feeder_command_is_documented() -> None:
    sub = next(a for a in feeder_parser()._actions if a.dest == "cmd")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"feeder {name}" in README, f"README does not document `feeder {name}`"
