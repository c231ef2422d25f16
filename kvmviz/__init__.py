"""kvmviz: see how KVM's MMU notifiers contend with vCPU page faults on ``mmu_lock``.

A teaching model of Linux KVM's rules around commit 8931a454ae ("KVM: Take mmu_lock when
handling MMU notifier iff the hva hits a memslot", v5.13) and 071064f14d87 (v5.15).
"""

from . import kernels, metrics, notifiers, presets, rwlock
from .engine import Run, simulate
from .kernels import CALLBACKS, KERNELS, rule, takes_lock
from .memslots import GfnRange, Memslot, MemslotError, MemslotLayout
from .metrics import brownout, compare_kernels, stall_stats, summarize
from .rwlock import POLICIES, replay
from .scenario import Scenario

__version__ = "0.1.0"

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
    "brownout",
    "compare_kernels",
    "kernels",
    "metrics",
    "notifiers",
    "presets",
    "replay",
    "rule",
    "rwlock",
    "simulate",
    "stall_stats",
    "summarize",
    "takes_lock",
]
