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
    from . import exercises, gallery, widgets
    from .inputs import kernels, layouts, memslots, notifiers, presets, scenario, traces
    from .inputs.kernels import CALLBACKS, KERNELS, KERNELS_2021, rule, takes_lock
    from .inputs.memslots import GfnRange, Memslot, MemslotError, MemslotLayout
    from .inputs.scenario import Scenario
    from .inputs.traces import load_ftrace, load_qemu_memslots
    from .model import classify, engine, run, rwlock
    from .model.engine import TooMuchWork, estimate, simulate
    from .model.run import Run
    from .model.rwlock import POLICIES, grant_times, replay
    from .stats import experiments, metrics
    from .stats.experiments import compare_kernels, sensitivity
    from .stats.metrics import brownout, stall_stats, summarize
    from .views import address_axis, animate, export, plot, theme, timelines
    from .views.export import to_perfetto
    from .views.theme import set_theme

# The public modules, by the stage folder each lives in (docs/architecture.md): `kv.plot`,
# `import kvmviz.plot` and `from kvmviz.plot import save` all reach `kvmviz.views.plot`.
_MODULES = {
    "kernels": "inputs.kernels",
    "layouts": "inputs.layouts",
    "memslots": "inputs.memslots",
    "notifiers": "inputs.notifiers",
    "presets": "inputs.presets",
    "scenario": "inputs.scenario",
    "traces": "inputs.traces",
    "classify": "model.classify",
    "engine": "model.engine",
    "run": "model.run",
    "rwlock": "model.rwlock",
    "experiments": "stats.experiments",
    "metrics": "stats.metrics",
    "address_axis": "views.address_axis",
    "animate": "views.animate",
    "export": "views.export",
    "plot": "views.plot",
    "theme": "views.theme",
    "timelines": "views.timelines",
    "exercises": "exercises",
    "gallery": "gallery",
    "widgets": "widgets",
}
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
    "KERNELS_2021": "kernels",
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
    "grant_times": "rwlock",
    "replay": "rwlock",
    "Scenario": "scenario",
    "set_theme": "theme",
    "load_ftrace": "traces",
    "load_qemu_memslots": "traces",
}


def __getattr__(name):
    import importlib

    if name in _MODULES:
        return importlib.import_module(f".{_MODULES[name]}", __name__)
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_MODULES[_NAMES[name]]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'kvmviz' has no attribute {name!r}")


class _StageAlias:
    """Finds ``kvmviz.<module>`` for a public module that lives in a stage folder.

    ``import kvmviz.plot`` gives the very module ``kvmviz.views.plot`` (one object under two
    names, so a monkeypatch or a private name reaches the same thing); nothing is imported
    until the name is asked for.
    """

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        from importlib.machinery import ModuleSpec

        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _MODULES or "." not in _MODULES[name]:
            return None
        return ModuleSpec(fullname, cls, origin=f"{__name__}.{_MODULES[name]}")

    @staticmethod
    def create_module(spec):
        import importlib

        module = importlib.import_module(spec.origin)
        spec.loader_state = module.__spec__
        return module

    @staticmethod
    def exec_module(module):
        # the import system stamped the alias's spec on the module: give it back its own
        module.__spec__ = module.__spec__.loader_state


def _install_alias():
    import sys

    if not any(finder is _StageAlias for finder in sys.meta_path):
        sys.meta_path.insert(0, _StageAlias)  # before any finder that knows an older tree


_install_alias()


def __dir__():
    return sorted({*globals(), *__all__})


__all__ = [
    "CALLBACKS",
    "KERNELS",
    "KERNELS_2021",
    "POLICIES",
    "GfnRange",
    "Memslot",
    "MemslotError",
    "MemslotLayout",
    "Run",
    "Scenario",
    "TooMuchWork",
    "address_axis",
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
    "grant_times",
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
    "theme",
    "timelines",
    "to_perfetto",
    "traces",
    "widgets",
]
