"""kvmviz: see how KVM's MMU notifiers contend with vCPU page faults on ``mmu_lock``.

A teaching model of Linux KVM's rules around commit 8931a454ae ("KVM: Take mmu_lock when
handling MMU notifier iff the hva hits a memslot", v5.13) and 071064f14d87 (v5.15).
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Every name is imported on first use (PEP 562), so that `import kvmviz` costs nothing until a
# name is used: the `kvmviz` command installs its Ctrl-C and kill handlers before numpy, numba
# and pandas load (a Ctrl-C during those imports is then one line, not a traceback), and the
# views (matplotlib, ipywidgets) load only for whoever draws. `kv.simulate`, `from kvmviz
# import simulate` and `dir(kv)` work as for eager imports. The block below is what a reader
# and a type checker see; tests/test_architecture.py checks that _MODULES and _NAMES say the
# same.
if TYPE_CHECKING:
    from . import (
        animate,
        classify,
        engine,
        exercises,
        experiments,
        export,
        gallery,
        kernels,
        layouts,
        memslots,
        metrics,
        notifiers,
        plot,
        presets,
        run,
        rwlock,
        scenario,
        timelines,
        traces,
        widgets,
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

_MODULES = frozenset(
    {
        "animate",
        "classify",
        "engine",
        "exercises",
        "experiments",
        "export",
        "gallery",
        "kernels",
        "layouts",
        "memslots",
        "metrics",
        "notifiers",
        "plot",
        "presets",
        "run",
        "rwlock",
        "scenario",
        "timelines",
        "traces",
        "widgets",
    }
)
# name -> the module it comes from
_NAMES = {
    "TooMuchWork": "engine",
    "estimate": "engine",
    "simulate": "engine",
    "compare_kernels": "experiments",
    "sensitivity": "experiments",
    "to_perfetto": "export",
    "CALLBACKS": "kernels",
    "KERNELS": "kernels",
    "rule": "kernels",
    "takes_lock": "kernels",
    "GfnRange": "memslots",
    "Memslot": "memslots",
    "MemslotError": "memslots",
    "MemslotLayout": "memslots",
    "brownout": "metrics",
    "stall_stats": "metrics",
    "summarize": "metrics",
    "Run": "run",
    "POLICIES": "rwlock",
    "replay": "rwlock",
    "Scenario": "scenario",
    "set_theme": "theme",
    "load_ftrace": "traces",
    "load_qemu_memslots": "traces",
}


def __getattr__(name):
    import importlib

    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'kvmviz' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


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
