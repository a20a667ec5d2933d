"""All knobs, in the order checks are reported."""

from __future__ import annotations

from hosttune.knobs.base import Knob
from hosttune.knobs.bpf import BpfKnob
from hosttune.knobs.cmdline import CmdlineKnob
from hosttune.knobs.cpufreq import CpufreqKnob
from hosttune.knobs.hugepages import HugePagesKnob
from hosttune.knobs.irq import IrqKnob
from hosttune.knobs.memlock import MemlockKnob
from hosttune.knobs.nic import NicKnob
from hosttune.knobs.numa import NumaKnob
from hosttune.knobs.swap import SwapKnob
from hosttune.knobs.sysctl import SysctlKnob
from hosttune.knobs.thp import ThpKnob
from hosttune.knobs.xdp import XdpKnob


def all_knobs() -> list[Knob]:
    return [
        CmdlineKnob(),
        CpufreqKnob(),
        IrqKnob(),
        HugePagesKnob(),
        ThpKnob(),
        MemlockKnob(),
        SwapKnob(),
        NumaKnob(),
        SysctlKnob(),
        NicKnob(),
        BpfKnob(),
        XdpKnob(),
    ]
