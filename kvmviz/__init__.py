"""kvmviz: see how KVM's MMU notifiers contend with vCPU page faults on ``mmu_lock``.

A teaching model of Linux KVM's rules around commit 8931a454ae ("KVM: Take mmu_lock when
handling MMU notifier iff the hva hits a memslot", v5.13) and 071064f14d87 (v5.15).
"""

from . import (
    classify,
    engine,
    exercises,
    experiments,
    export,
    kernels,
    layouts,
    memslots,
    metrics,
    notifiers,
    presets,
    run,
    rwlock,
    scenario,
    traces,
)
from .engine import TooMuchWork, estimate, simulate
from .experiments import compare_kernels, sensitivity
from .export import to_perfetto
from .kernels import CALLBACKS, KERNELS, rule, takes_lock
from .memslots import GfnRange, Memslot, MemslotError, MemslotLayout
from .metrics import brownout, stall_stats, summarize
from .run import Run
from .rwlock import POLICIES, replay
from .scenario import Scenario
from .theme import set_theme
from .traces import load_ftrace, load_qemu_memslots

__version__ = "0.1.0"

# The views load matplotlib and ipywidgets: imported on first use, so the model stays light.
_LAZY = ("animate", "gallery", "plot", "timelines", "widgets")


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kvmviz' has no attribute {name!r}")


__all__ = [
    "CALLBACKS",
    "KERNELS",
    "POLICIES",
    "GfnRange",
    "Memslot",
    "MemslotError",
    "MemslotLayout",
    "Run",
    "Scenario",
    "TooMuchWork",
    "animate",
    "brownout",
    "classify",
    "compare_kernels",
    "engine",
    "estimate",
    "exercises",
    "experiments",
    "export",
    "gallery",
    "kernels",
    "layouts",
    "load_ftrace",
    "load_qemu_memslots",
    "memslots",
    "metrics",
    "notifiers",
    "plot",
    "presets",
    "replay",
    "rule",
    "run",
    "rwlock",
    "scenario",
    "sensitivity",
    "set_theme",
    "simulate",
    "stall_stats",
    "summarize",
    "takes_lock",
    "timelines",
    "to_perfetto",
    "traces",
    "widgets",
]
