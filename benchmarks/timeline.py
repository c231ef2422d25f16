"""Timeline benchmark: one redraw of the zoomable lock timeline, three ways, at 8 and 416 vCPUs.

The lock timeline (:func:`kvmviz.timelines.lock_timeline`) of the default ``Scenario`` (20
simulated ms, TDP MMU, seed 0) at 8 vCPUs (one lane each) and 416 (the 374 faulting vCPUs in
eight grouped lanes), the three kernels simulated once (not timed). One learner's session is
replayed on each: the busiest window (about 1 ms), zoom in twice, pan on and back, the kernel
toggle to v5.15, v5.13 and back to v5.12 (the window kept), zoom out four times, the whole run,
the busiest window again: 14 redraws. Every figure is 10 x 5 in at 80 dpi (800 x 400 px). Timed,
in one process:

* **reference**: the empty figure (two axes) drawn once by Agg, a yardstick of this machine;
  every row is also given as a ratio to it;
* **(b) kvmviz**: :class:`kvmviz.widgets.TimelineExplorer`, an ``ipywidgets`` range slider and
  buttons driving a redraw rendered to PNG for an ``ipywidgets.Image``: the lanes' data, the
  time axis, the title and the legend redrawn in place
  (:class:`kvmviz.timelines.LockTimeline`) and blitted onto the background drawn once
  (:class:`kvmviz.animate.Blitter`), each look of the legend drawn once, then the PNG
  (Pillow, ``compress_level=1``). The whole ``update()`` is timed, every step; the session runs
  ``--repeat`` times, the first pass cold (each legend drawn for the first time), and the
  goal judges each step's best pass;
* **(b0) no blitting**: the same windows, each a fresh :func:`lock_timeline` into cleared axes,
  the whole figure drawn (constrained layout) and encoded: what the blitting saves;
* **(a) ipympl**: the server side of one redraw of an ipympl figure: ``Canvas.draw()`` (Agg,
  the whole figure) and its diff PNG to the browser (``get_diff_image``, Pillow's default
  compression), as ipympl's toolbar triggers it; ipympl's own ``Canvas`` if it can be
  imported (``PYTHONPATH`` to a ``pip install --target`` of it, say), otherwise matplotlib's
  ``FigureCanvasWebAggCore``, the class ipympl's ``Canvas`` extends (the same server-side code,
  without the comm). Two ways to use it: **(a1)** the toolbar's own zoom on the whole run drawn
  once (only the x limits change; the lanes stay binned over 20 ms, the axis in ms, the legend
  the whole run's, and the kernel toggle redraws everything), and **(a2)** the window redrawn
  by :func:`lock_timeline` on each ``xlim_changed``, so the picture is right;
* **(c) anywidget**: a JavaScript front end drawing the lanes in the browser redraws nothing on
  the server: what it costs is the data sent once per run, measured as the tables the front
  end needs (faults, notifier callbacks, the waiting acquisitions), as binary buffers and as
  JSON, and the time to pack them. Not measured: the browser's drawing, which does not exist
  (it would be a second implementation of the lanes, minimum widths, grouping and legend).

Not measured: the comm message to the browser and its decoding (a PNG of 30-100 KiB a redraw).

    python benchmarks/timeline.py            # both sizes, 3 passes, about a minute
    python benchmarks/timeline.py --quick    # 8 and 64 vCPUs, 5 ms, one pass
    python benchmarks/timeline.py --check    # exit 1 if a redraw misses the goal

It is a report, not a test: the exit status is 0 whenever it ran, unless ``--check`` is given
and a goal fails.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing kvmviz
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import kvmviz as kv  # noqa: E402
from kvmviz import timelines, widgets  # noqa: E402

GOAL_MS = 150.0
FIGSIZE, DPI = (10, 5), 80


def _figure(canvas_class=FigureCanvasAgg):
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    canvas = canvas_class(figure)
    axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    return figure, canvas, axes


def _png(canvas) -> bytes:
    width, height = canvas.get_width_height()
    rgba = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba())
    buffer = io.BytesIO()
    rgba.convert("RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def session(explorer) -> list[tuple[str, callable]]:
    """The learner's 14 steps, as (label, action) on a TimelineExplorer."""
    zoom_out = [(f"zoom out {i + 1}", lambda: explorer.zoom(0.5)) for i in range(4)]
    return [
        ("busiest window", lambda: explorer.set_window(*explorer.busiest_window())),
        ("zoom in", lambda: explorer.zoom(2)),
        ("zoom in again", lambda: explorer.zoom(2)),
        ("pan later", lambda: explorer.pan(0.5)),
        ("pan earlier", lambda: explorer.pan(-0.5)),
        ("kernel v5.15", lambda: setattr(explorer.kernel, "value", "v5.15")),
        ("kernel v5.13", lambda: setattr(explorer.kernel, "value", "v5.13")),
        ("kernel v5.12", lambda: setattr(explorer.kernel, "value", "v5.12")),
        *zoom_out,
        ("whole run", lambda: explorer.set_window(0, explorer.duration_us)),
        ("busiest again", lambda: explorer.set_window(*explorer.busiest_window())),
    ]


def measure_explorer(explorer, n_vcpus: int, repeat: int):
    """(b): every step's update() in ms, per pass; and the (kernel, window) of each step."""
    explorer.vcpus.value = n_vcpus
    passes, shown = [], []
    for i in range(repeat):
        explorer.set_window(0, explorer.duration_us)  # a window no step starts from
        explorer.kernel.value = "v5.12"
        times = []
        for _label, step in session(explorer):
            before = (explorer.kernel.value, explorer.window.value)
            step()
            if (explorer.kernel.value, explorer.window.value) == before:
                explorer.update()  # a step that changed nothing is still a redraw to time
            times.append(1000 * explorer.last_update_s)
            if i == 0:
                shown.append((explorer.kernel.value, tuple(explorer.window.value)))
        passes.append(times)
    return passes, shown


def measure_plain(runs, shown, repeat: int) -> list[float]:
    """(b0): each window a fresh lock_timeline into cleared axes, the whole figure drawn."""
    _fig, canvas, (lanes, queue) = _figure()
    best = [float("inf")] * len(shown)
    for _ in range(repeat):
        for i, (kernel, window) in enumerate(shown):
            started = time.perf_counter()
            lanes.clear()
            queue.clear()
            timelines.lock_timeline(runs[kernel], *window, ax=(lanes, queue), arrivals=True)
            canvas.draw()
            _png(canvas)
            best[i] = min(best[i], 1000 * (time.perf_counter() - started))
    return best


def webagg_canvas():
    """ipympl's Canvas if importable (with a manager, as ipympl gives every figure, and the
    front end marked present, so no data URL is encoded besides the diff), else matplotlib's
    FigureCanvasWebAggCore, which it extends. Returns (name, factory)."""
    try:
        import ipympl
        from ipympl.backend_nbagg import Canvas, FigureManager
    except ImportError:
        from matplotlib.backends.backend_webagg_core import (
            FigureCanvasWebAggCore,
            FigureManagerWebAgg,
        )

        def core(figure):
            canvas = FigureCanvasWebAggCore(figure)
            FigureManagerWebAgg(canvas, 0)
            return canvas

        return "matplotlib FigureCanvasWebAggCore (ipympl not importable)", core

    Canvas.send = lambda self, content, buffers=None: None  # no browser: drop the message

    def ipympl_canvas(figure):
        canvas = Canvas(figure)
        FigureManager(canvas, 0)
        canvas.syncing_data_url = False  # as once the front end has said "initialized"
        return canvas

    return f"ipympl {ipympl.__version__} Canvas", ipympl_canvas


def _redraw(canvas) -> None:
    """One server-side redraw as ipympl serves a front end's "draw": Agg draws the figure,
    then the diff image is encoded for the browser."""
    canvas._png_is_old = True
    FigureCanvasAgg.draw(canvas)
    canvas._png_is_old = True
    canvas.get_diff_image()


def measure_ipympl(factory, runs, shown, repeat: int, duration_us: float):
    """(a1) toolbar zoom on the whole run, (a2) lock_timeline redrawn per window: best ms per
    step."""
    results = {}
    _fig, canvas, (lanes, queue) = _figure(factory)
    drawn = {"kernel": None}

    def toolbar(kernel, window):
        if kernel != drawn["kernel"]:  # the kernel toggle: a new run, drawn in full
            lanes.clear()
            queue.clear()
            timelines.lock_timeline(runs[kernel], 0, duration_us, ax=(lanes, queue), arrivals=True)
            drawn["kernel"] = kernel
        scale = 1e-3 if duration_us >= 2000 else 1.0  # the whole run's axis unit
        lanes.set_xlim(window[0] * scale, window[1] * scale)
        _redraw(canvas)

    def per_window(kernel, window):
        lanes.clear()
        queue.clear()
        timelines.lock_timeline(runs[kernel], *window, ax=(lanes, queue), arrivals=True)
        _redraw(canvas)

    for name, step in (("a1", toolbar), ("a2", per_window)):
        best = [float("inf")] * len(shown)
        for _ in range(repeat):
            drawn["kernel"] = None
            step("v5.12", (0.0, duration_us))  # the figure as first shown: not timed
            for i, (kernel, window) in enumerate(shown):
                started = time.perf_counter()
                step(kernel, window)
                best[i] = min(best[i], 1000 * (time.perf_counter() - started))
        results[name] = best
    return results


def payload(run) -> tuple[int, int, float]:
    """(c): what a browser-side timeline needs of one run: (binary bytes, JSON bytes, ms to
    pack both)."""
    started = time.perf_counter()
    faults, notifiers, lock = run.faults, run.notifiers, run.lock
    waited = lock[lock["wait_us"].to_numpy() > 0]
    columns = {
        "vcpu": faults["vcpu"].to_numpy().astype(np.int32),
        **{c: faults[c].to_numpy(dtype=float) for c in ("t_request_us", "t_grant_us")},
        "t_release_us": faults["t_release_us"].to_numpy(dtype=float),
        **{
            f"n_{c}": notifiers[c].to_numpy(dtype=float)
            for c in ("t_arrive_us", "t_grant_us", "t_release_us")
        },
        **{f"n_{c}": notifiers[c].to_numpy().astype(np.int8) for c in ("locked", "hit")},
        "n_event": notifiers["event"].to_numpy().astype(np.int32),
        **{f"q_{c}": waited[c].to_numpy(dtype=float) for c in ("t_request_us", "t_grant_us")},
    }
    binary = sum(len(a.tobytes()) for a in columns.values())
    text = len(json.dumps({k: a.tolist() for k, a in columns.items()}))
    return binary, text, 1000 * (time.perf_counter() - started)


def _stats(times) -> str:
    return f"median {statistics.median(times):6.1f}  max {max(times):6.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small runs, one pass")
    parser.add_argument("--repeat", type=int, default=3, help="passes of the session")
    parser.add_argument("--check", action="store_true", help=f"exit 1 above {GOAL_MS:g} ms")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)
    base = kv.Scenario(duration_us=5_000) if args.quick else kv.Scenario()
    sizes = (8, 64) if args.quick else (8, 416)
    print(
        f"python {platform.python_version()}, matplotlib {matplotlib.__version__}, "
        f"Pillow {PIL.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    started = time.perf_counter()
    explorer = widgets.timeline_explorer(base, seed=0, sizes=sizes, n_vcpus=sizes[0])
    built = time.perf_counter() - started
    print(
        f"runs: {base.duration_us / 1000:g} ms simulated, seed 0, {len(kv.KERNELS)} kernels at "
        f"{' and '.join(map(str, sizes))} vCPUs; the explorer built (simulations, both "
        f"figures drawn once) in {built:.2f} s"
    )

    def empty(_i):
        canvas = _figure()[1]
        canvas.draw()

    reference = min(_timed(empty) for _ in range(5))
    print(
        f"\nreference: the empty 800 x 400 px figure with two axes, drawn once {reference:.1f} ms"
    )
    factory_name, factory = webagg_canvas()
    verdicts = {}
    for n_vcpus in sizes:
        passes, shown = measure_explorer(explorer, n_vcpus, repeat)
        runs = explorer.runs()
        best = [min(step) for step in zip(*passes, strict=True)]
        labels = [label for label, _ in session(explorer)]
        print(f"\n{n_vcpus} vCPUs: {len(shown)} redraws of one session (ms; x the reference)")
        print(f"  {'step':16s} {'window (µs)':>22s} {'(b) cold':>9s} {'(b) best':>9s}")
        for label, (kernel, window), cold, fast in zip(labels, shown, passes[0], best, strict=True):
            print(
                f"  {label:16s} {window[0]:10,.1f}-{window[1]:<10,.1f} {cold:9.1f} {fast:9.1f}"
                f"   {kernel}"
            )
        plain = measure_plain(runs, shown, repeat)
        ipympl = measure_ipympl(factory, runs, shown, repeat, explorer.duration_us)
        rows = {
            "(b)  kvmviz: in place + blit + PNG, cold": passes[0],
            "(b)  kvmviz: in place + blit + PNG, best": best,
            "(b0) lock_timeline + full draw + PNG": plain,
            "(a1) ipympl, toolbar zoom on the whole run": ipympl["a1"],
            "(a2) ipympl, lock_timeline per window": ipympl["a2"],
        }
        for label, times in rows.items():
            ratio = statistics.median(times) / statistics.median(best)
            print(
                f"  {label:44s} {_stats(times)}  {statistics.median(times) / reference:5.2f}x ref"
                f"  {ratio:5.2f}x (b)"
            )
        binary = [payload(run) for run in runs.values()]
        print(
            f"  (c)  anywidget: nothing redrawn on the server; the data of one run: "
            f"{statistics.mean(b for b, _, _ in binary) / 1024:,.0f} KiB binary, "
            f"{statistics.mean(t for _, t, _ in binary) / 1024:,.0f} KiB JSON, packed in "
            f"{statistics.mean(ms for _, _, ms in binary):.1f} ms (the 3 kernels: "
            f"{sum(b for b, _, _ in binary) / 1024:,.0f} KiB)"
        )
        verdicts[n_vcpus] = max(best)
    print(f"\n(a) measured with {factory_name}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"goal: each redraw of (b) <= {GOAL_MS:g} ms (every step's best of {repeat})")
    ok = True
    for n_vcpus, worst in verdicts.items():
        verdict = "ok" if worst <= GOAL_MS else "ABOVE GOAL"
        ok &= worst <= GOAL_MS
        print(f"  {n_vcpus:4d} vCPUs: slowest step {worst:6.1f} ms  {verdict}")
    return 0 if ok or not args.check else 1


def _timed(fn) -> float:
    started = time.perf_counter()
    fn(0)
    return 1000 * (time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(main())
