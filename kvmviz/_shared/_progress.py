"""Progress reports for long loops: ``progress=None | True | callable(done, total)``.

One convention for every function with a ``progress`` argument (:func:`kvmviz.experiments.grid`,
:func:`kvmviz.load_ftrace`): ``None`` or ``False`` reports nothing, a callable is called as
``progress(done, total)``, and ``True`` shows a bar: an ipywidgets ``IntProgress`` inside a
Jupyter kernel, otherwise one self-overwriting line on stderr (at most 5 updates a second).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Describe = Callable[[int, int], str]  # (done, total) -> "3 / 10 runs"


class StderrProgress:
    """One self-overwriting line on stderr, ``name: <describe(done, total)>``."""

    def __init__(self, name: str, describe: Describe) -> None:
        self.name, self.describe = name, describe
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        final = done >= total
        if not final and now - self.last < 0.2:
            return
        self.last = now
        sys.stderr.write(f"\r{self.name}: {self.describe(done, total)}" + ("\n" if final else ""))
        sys.stderr.flush()


class WidgetProgress:
    """An ipywidgets progress bar with a label, shown when first called."""

    def __init__(self, name: str, describe: Describe) -> None:
        import ipywidgets as w

        self.describe = describe
        self.bar = w.IntProgress(value=0, min=0, max=1, description=name)
        self.label = w.Label()
        self.box = w.HBox([self.bar, self.label])
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.shown:
            from IPython.display import display

            display(self.box)
            self.shown = True
        self.bar.max = max(total, 1)
        self.bar.value = min(done, self.bar.max)
        self.label.value = self.describe(done, total)
        if done >= total:
            self.bar.bar_style = "success"


def in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (where widgets can be displayed)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def reporter(progress, name: str, describe: Describe, what: str):
    """The ``progress(done, total)`` callable for a ``progress`` argument, or None.

    ``what`` names the arguments in the error for a bad value, e.g. ``"done, total"``.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        if in_jupyter_kernel():
            try:
                return WidgetProgress(name, describe)
            except ImportError:
                pass
        return StderrProgress(name, describe)
    if callable(progress):
        return progress
    raise TypeError(f"progress must be None, True or a callable({what}), got {progress!r}")


def describe_bytes(done: int, total: int) -> str:
    """A reader's progress through a file: ``" 42.0% (1.2 / 2.9 MB)"``."""
    pct = 100.0 * done / total if total else 100.0
    return f"{pct:5.1f}% ({done / 1e6:.1f} / {total / 1e6:.1f} MB)"
