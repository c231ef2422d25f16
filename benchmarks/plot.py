"""Static-figure benchmark: the dashboard's hot path, and what seaborn costs where it draws.

A live view draws the per-fault stall CDF and the brownout curve once
(:func:`kvmviz.plot.stall_cdf`, :func:`kvmviz.plot.brownout_curve`), then, at each slider move,
gives their lines the new runs' data in place (:func:`kvmviz.plot.update`) and blits them onto
the saved background, as the dashboard (:class:`kvmviz.widgets.ToggleDashboard`) does with its
brownout curve. This times, in one process, on runs of the default dashboard size (416 vCPUs,
20 simulated ms, the three kernels; simulated once, not timed):

* **reference**: an empty figure of the dashboard's former size (11 x 6.2 in at 80 dpi, three
  axes) drawn once by Agg, a yardstick of this machine; every other row is also given as a
  ratio to it;
* **(a)** one update of the two line views, alternating between two scenarios whose runs are
  cached (as the dashboard's are): kvmviz's in-place update plus the blit of the lines, against
  the seaborn way (remove the lines, draw new ones with ``seaborn.ecdfplot`` from the same
  per-fault stalls, blit them), which cannot reuse artists;
* **(b)** the first draw of the two views (a new figure, drawn once), both ways;
* **(c)** the static figures, drawn and saved as SVG twice from the same data: milliseconds,
  SVG bytes and whether the two files are byte-identical (:func:`kvmviz.set_theme` fixes
  ``svg.hashsalt``): the stall CDF both ways, and the two views drawn by seaborn
  (:func:`kvmviz.plot.heatmaps` by ``seaborn.heatmap``, :func:`kvmviz.plot.curves` by
  ``seaborn.lineplot`` with the spread over seeds) on a chapter-6-sized sweep table
  (3 kernels x 5 x 5 points x 2 seeds, made up from a fixed seed: nothing is simulated);
* **(d)** the dashboard itself (:class:`kvmviz.widgets.ToggleDashboard`, built once, its other
  setup simulated ahead), as in a notebook and as on a projector (``projector=True``, a
  1,904 x 848 px figure): a flip of the kernel toggle and a flip of the setup toggle (static /
  volatile, both cached), each the whole redraw a learner waits for (update, blit, PNG), the
  goal being well under 150 ms.

    python benchmarks/plot.py            # the default dashboard size, about 30 s
    python benchmarks/plot.py --quick    # 64 vCPUs, 5 ms (tests/test_benchmark_smoke.py)

It is a report, not a test: the exit status is 0 whenever it ran.
"""

from __future__ import annotations

import argparse
import io
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

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import kvmviz as kv  # noqa: E402
from kvmviz import plot  # noqa: E402
from kvmviz.views import stall_figures  # noqa: E402

_FLOOR_US = 0.1  # where stall_cdf draws the attempts that did not wait


def timed(fn, repeat: int) -> tuple[float, float]:
    """(best, median) milliseconds of ``fn(i)`` over ``repeat`` calls."""
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        fn(i)
        times.append(1000 * (time.perf_counter() - started))
    return min(times), statistics.median(times)


def dashboard_figure():
    """The dashboard's figure and canvas, with its two line axes (the map's axes left empty)."""
    figure = Figure(figsize=(11, 6.2), dpi=80, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=[1.5, 1])
    ax_cdf, ax_brownout = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    figure.add_subplot(grid[1, :])
    return figure, canvas, ax_cdf, ax_brownout


def fault_stalls(runs) -> dict:
    """Each run's per-fault stalls (what the CDF draws), floored at the log axis's edge."""
    return {
        label: np.maximum(kv.metrics.fault_stalls(run)["stall_us"].to_numpy(), _FLOOR_US)
        for label, run in runs.items()
    }


def seaborn_cdf(ax, stalls, highlight=None) -> None:
    """The stall CDF the seaborn way: one ``ecdfplot`` per run, every fault a step."""
    for label, values in stalls.items():
        sns.ecdfplot(x=values, ax=ax, log_scale=True, **stall_figures._style(label, highlight))


def row(label: str, ms: tuple[float, float], reference: float, extra: str = "") -> None:
    best, median = ms
    print(
        f"  {label:44s} {best:8.1f} ms  (median {median:7.1f})  {best / reference:6.2f}x ref{extra}"
    )


def svg_twice(draw) -> tuple[float, int, bool]:
    """Draw a figure twice from the same data and save each as SVG: (ms of the faster draw and
    save, the SVG's bytes, whether the two files are byte-identical)."""
    out, times = [], []
    for _ in range(2):
        started = time.perf_counter()
        fig = draw()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        times.append(1000 * (time.perf_counter() - started))
        plt.close(fig)
        out.append(buffer.getvalue())
    return min(times), len(out[0]), out[0] == out[1]


def sweep_table(seed: int = 0) -> pd.DataFrame:
    """A sweep table shaped as chapter 6's (kernels x spurious share x vCPUs x 2 seeds)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, kernel in enumerate(kv.KERNELS):
        for share in (0.0, 0.25, 0.5, 0.75, 1.0):
            for n in (16, 64, 128, 256, 416):
                for s in (0, 1):
                    p99 = (3 - k) * n * (0.2 + share) * rng.uniform(0.8, 1.2)
                    rows.append((kernel, share, n, s, p99))
    columns = ["kernel", "spurious_share", "n_vcpus", "seed", "stall_p99_us"]
    return pd.DataFrame(rows, columns=columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small runs, few repeats")
    args = parser.parse_args(argv)
    repeat = 5 if args.quick else 30
    base = (
        kv.Scenario(n_vcpus=64, duration_us=5_000, guest_run_us=20) if args.quick else kv.Scenario()
    )
    print(
        f"python {platform.python_version()}, matplotlib {matplotlib.__version__}, "
        f"seaborn {sns.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    kv.set_theme("notebook")
    scenarios = (base, base.replace(spurious_share=0.5))
    runs = [{k: kv.simulate(s, k, seed=0) for k in kv.KERNELS} for s in scenarios]
    stalls = [fault_stalls(r) for r in runs]
    faults = sum(len(r.faults) for r in runs[0].values())
    print(
        f"runs: {base.n_vcpus} vCPUs, {base.duration_us / 1000:g} ms, {len(kv.KERNELS)} kernels "
        f"({faults:,} fault attempts), spurious share {base.spurious_share:g} and 0.5"
    )

    def empty(_i):
        _figure, canvas, *_ = dashboard_figure()
        canvas.draw()

    reference = timed(empty, repeat)[0]
    print("\nreference")
    row("empty dashboard figure, drawn once", (reference, reference), reference)

    print("\n(a) one update of the stall CDF and brownout views (the dashboard's hot path)")
    figure, canvas, ax_cdf, ax_brownout = dashboard_figure()
    plot.stall_cdf(runs[0], ax=ax_cdf, highlight="v5.12")
    plot.brownout_curve(runs[0], ax=ax_brownout, highlight="v5.12")
    for line in [*ax_cdf.get_lines(), *ax_brownout.get_lines()]:
        line.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(figure.bbox)

    def blit(axes) -> None:
        canvas.restore_region(background)
        for ax in axes:
            for line in ax.get_lines():
                ax.draw_artist(line)

    def in_place(i):
        for ax in (ax_cdf, ax_brownout):
            plot.update(ax, runs[i % 2], highlight="v5.15")
        blit((ax_cdf, ax_brownout))

    fast = timed(in_place, repeat)
    row("kvmviz: plot.update in place + blit", fast, reference)
    update_only = timed(lambda i: plot.update(ax_cdf, runs[i % 2], highlight="v5.15"), repeat)
    row("  of which plot.update, CDF axes only", update_only, reference)

    def with_seaborn(i):
        for line in list(ax_cdf.get_lines()):
            line.remove()
        seaborn_cdf(ax_cdf, stalls[i % 2], highlight="v5.15")
        for line in ax_cdf.get_lines():
            line.set_animated(True)
        plot.update(ax_brownout, runs[i % 2], highlight="v5.15")
        blit((ax_cdf, ax_brownout))

    slow = timed(with_seaborn, repeat)
    row("seaborn: new ecdfplot lines + blit", slow, reference, f"  {slow[0] / fast[0]:.1f}x kvmviz")

    print("\n(b) first draw of the two views (new figure, drawn once)")

    def first(draw_cdf):
        def go(_i):
            _figure, canvas, ax_cdf, ax_brownout = dashboard_figure()
            draw_cdf(ax_cdf)
            plot.brownout_curve(runs[0], ax=ax_brownout)
            canvas.draw()

        return go

    first_kvmviz = timed(first(lambda ax: plot.stall_cdf(runs[0], ax=ax)), max(3, repeat // 5))
    row("kvmviz: stall_cdf + brownout_curve", first_kvmviz, reference)
    first_sns = timed(first(lambda ax: seaborn_cdf(ax, stalls[0])), max(3, repeat // 5))
    row(
        "seaborn: ecdfplot + brownout_curve",
        first_sns,
        reference,
        f"  {first_sns[0] / first_kvmviz[0]:.1f}x kvmviz",
    )

    print("\n(c) static figures, drawn and saved as SVG twice from the same data")
    table = sweep_table()

    def figure_of(draw_ax):
        def go():
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            draw_ax(ax)
            return fig

        return go

    def curve_rows():
        return table[table.spurious_share == 0.5]

    cases = {
        "stall_cdf (kvmviz, <= 2,000 points a line)": figure_of(
            lambda ax: plot.stall_cdf(runs[0], ax=ax)
        ),
        "stall CDF by seaborn.ecdfplot (every fault)": figure_of(
            lambda ax: seaborn_cdf(ax, stalls[0])
        ),
        "heatmaps, 3 panels of 5 x 5 (seaborn.heatmap)": lambda: plot.heatmaps(
            table, "spurious_share", "n_vcpus", "stall_p99_us"
        ),
        "curves, 3 lines + spread (seaborn.lineplot)": figure_of(
            lambda ax: plot.curves(curve_rows(), "n_vcpus", "stall_p99_us", hue="kernel", ax=ax)
        ),
    }
    for label, draw in cases.items():
        ms, size, same = svg_twice(draw)
        print(
            f"  {label:44s} {ms:8.1f} ms  {size / 1024:8.1f} KiB SVG  {ms / reference:6.2f}x ref"
            f"  same bytes: {'yes' if same else 'NO'}"
        )

    print("\n(d) the dashboard: one flip, the whole redraw (update, blit, PNG); goal < 150 ms")
    from kvmviz import widgets

    vm = kv.Scenario(n_vcpus=64, duration_us=5_000, guest_run_us=20) if args.quick else None
    # In a notebook (chapter 04) and on a projector (`make dashboard`: a 1,904 x 848 px figure).
    for mode, projector in (("notebook", False), ("projector", True)):
        started = time.perf_counter()
        dashboard = widgets.ToggleDashboard(vm, seed=0, projector=projector)
        width, height = dashboard.canvas.get_width_height()
        print(
            f"  {mode}: built (both setups simulated) in {time.perf_counter() - started:.1f} s, "
            f"figure {width} x {height} px"
        )
        flips = {
            "kernel toggle (cached runs)": ("kernel", list(kv.KERNELS)),
            "setup toggle, static / volatile (cached)": ("setup", ["volatile", "static"]),
        }
        for label, (control, values) in flips.items():

            def flip(i, dashboard=dashboard, control=control, values=values):
                getattr(dashboard, control).value = values[(i + 1) % len(values)]

            flip(-1)  # settle on the first value
            best, median = timed(flip, repeat)
            verdict = "ok" if median < 150 else "OVER"
            print(
                f"  {mode + ', ' + label:54s} {best:8.1f} ms  (median {median:7.1f})  "
                f"goal 150 ms: {verdict}"
            )
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
