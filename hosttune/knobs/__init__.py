"""All knobs, in the order checks are reported."""

from __future__ import annotations

from hosttune.knobs.base import Knob
from hosttune.knobs.bpf import BpfKnob
from hosttune.knobs.cmdline import CmdlineKnob
from hosttune.knobs.hugepages import HugePagesKnob
from hosttune.knobs.nic import NicKnob
from hosttune.knobs.sysctl import SysctlKnob
from hosttune.knobs.thp import ThpKnob


def all_knobs() -> list[Knob]:
    return [CmdlineKnob(), HugePagesKnob(), ThpKnob(), SysctlKnob(), NicKnob(), BpfKnob()]
