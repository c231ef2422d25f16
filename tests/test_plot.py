"""The static figures of kvmviz.plot: what each draws, checked on the artists themselves.

Small scenarios keep every simulation here well under a second; the sweep figures draw tables
made up by hand, so each cell and line has a value known in advance.
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from _artists import face, gids, legend_texts, min_px, screen_widths
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

import kvmviz as kv
from kvmviz import metrics, plot
from kvmviz.presets import VMM_HEAP, large_vm_layout
from kvmviz.theme import COLORS, KERNEL_STYLES

SMALL = kv.Scenario(n_vcpus=16, duration_us=5_000, guest_run_us=20, notifier_rate_hz=5_000)


@pytest.fixture(scope="module")
def runs():
    """The small scenario on every kernel, same seed."""
    return {k: kv.simulate(SMALL, kernel=k, seed=1) for k in kv.KERNELS}


def _titles(ax) -> set[str]:
    return {ax.get_title(loc) for loc in ("left", "center", "right")}


# -- memslot maps ----------------------------------------------------------------------------


def _ranges(layout):
    """One range hitting slot 1 of the large VM and one in the VMM's own heap (a miss)."""
    ram = next(s for s in layout if s.slot == 1 and s.as_id == 0)
    return pd.DataFrame(
        {
            "event": [0, 1],
            "hva_start": np.array([ram.hva_start + 0x1000, VMM_HEAP[0]], dtype=np.uint64),
            "hva_end": np.array([ram.hva_start + 0x3000, VMM_HEAP[0] + 0x2000], dtype=np.uint64),
            "hit": [True, False],
        }
    )


def test_memslot_map_draws_one_bar_per_slot_and_hits_apart_from_misses():
    """One green rectangle per memslot; hits vermilion and misses grey, in their own
    collections (the dashboard finds them by gid)."""
    layout = large_vm_layout()
    fig, ax = plt.subplots()
    plot.memslot_map(layout, _ranges(layout), ax=ax)
    assert len(fig.axes) == 1
    slots = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid()]
    assert len(slots) == len(layout)
    assert {to_hex(p.get_facecolor()) for p in slots} == {COLORS["memslot"]}
    spans = gids(ax, "notifiers-")
    assert set(spans) == {"notifiers-hit", "notifiers-miss"}
    assert len(spans["notifiers-hit"].get_paths()) == 1
    assert len(spans["notifiers-miss"].get_paths()) == 1
    assert face(spans["notifiers-hit"]) == COLORS["hit"]
    # Misses: a grey hatch on a pale, opaque ground (overlaps do not darken into solid grey).
    assert face(spans["notifiers-miss"]) == COLORS["miss_face"]
    assert to_hex(spans["notifiers-miss"].get_edgecolor()[0]) == COLORS["miss"]
    assert spans["notifiers-miss"].get_alpha() is None
    assert spans["notifiers-miss"].get_hatch()  # grey-scale printing: hatched misses
    assert "hva" in ax.get_xlabel()


def test_gfn_view_draws_the_guest_physical_side_below():
    """With gfn_view the figure gets a second axes: the slots on the gfn axis, and each hit
    where its guest frames land; an SMM alias makes one hit reach both address spaces."""
    layout = large_vm_layout(smm=True)
    ax = plot.memslot_map(layout, _ranges(layout), gfn_view=True)
    hva_ax, gfn_ax = ax.figure.axes
    assert hva_ax is ax
    bars = [p for p in gfn_ax.patches if (p.get_gid() or "").startswith("gfn-memslot-")]
    assert len(bars) == len(layout)
    hits = gids(gfn_ax, "gfn-hits-")
    assert set(hits) == {"gfn-hits-as0", "gfn-hits-as1"}
    # The hit covers 2 pages of slot 1, aliased in as_id 0 and 1: one gfn range in each.
    assert [len(hits[g].get_paths()) for g in ("gfn-hits-as0", "gfn-hits-as1")] == [1, 1]
    assert face(hits["gfn-hits-as0"]) == COLORS["hit"]
    assert [t.get_text() for t in gfn_ax.get_yticklabels()] == ["as_id 0", "as_id 1 (SMM)"]
    assert "gfn" in gfn_ax.get_xlabel() and "4 KiB" in gfn_ax.get_xlabel()


def test_gfn_view_needs_two_axes():
    """gfn_view with one Axes is refused; with a pair, both are drawn on."""
    _fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="pair of axes"):
        plot.memslot_map(large_vm_layout(), ax=ax, gfn_view=True)
    _fig, axes = plt.subplots(2, 1)
    plot.memslot_map(large_vm_layout(), ax=axes, gfn_view=True)
    assert all(a.patches for a in axes)


def test_gfn_map_counts_every_gfn_range_of_a_run(runs):
    """Every hit of the run is drawn once per gfn range it reaches."""
    run = runs["v5.12"]
    _fig, ax = plt.subplots()
    plot.gfn_map(SMALL.layout, run.notifiers, ax=ax)
    events = run.notifiers.drop_duplicates("event")
    hits = events[events["hit"]]
    expected = sum(len(SMALL.layout.gfn_ranges(int(a), int(b))) for a, b in zip(
        hits["hva_start"], hits["hva_end"], strict=True
    ))  # fmt: skip
    drawn = sum(len(c.get_paths()) for c in gids(ax, "gfn-hits-").values())
    assert drawn == expected


# -- kernels side by side ---------------------------------------------------------------------


def test_kernel_bars_from_table_or_runs(runs):
    """The per-kernel table (kv.metrics.kernel_table) and a {kernel: Run} mapping draw the
    same bars."""
    table = kv.metrics.kernel_table(runs)
    _fig, (left, right) = plt.subplots(1, 2)
    plot.kernel_bars(table, ax=left)
    plot.kernel_bars(runs, ax=right)
    for ax in (left, right):
        bars = [p for p in ax.patches if (p.get_gid() or "").startswith("bar|")]
        assert [b.get_gid() for b in bars] == [f"bar|{k}" for k in kv.KERNELS]
        assert [to_hex(b.get_facecolor()) for b in bars] == [
            KERNEL_STYLES[k]["color"] for k in kv.KERNELS
        ]
        np.testing.assert_allclose([b.get_height() for b in bars], table["p99_us"])
        assert ax.get_ylabel() == "µs" and "p99 fault stall" in _titles(ax)
        assert all(t.get_text().endswith(" µs") for t in ax.texts)
    assert [t.get_text().split("\n")[0] for t in left.get_xticklabels()] == list(kv.KERNELS)


def test_kernel_bars_draw_shares_in_percent(runs):
    """A share (brownout_mean) is drawn in %, each bar labelled with a %; an unknown
    metric is refused."""
    ax = plot.kernel_bars(runs, metric="brownout_mean", ax=plt.subplots()[1])
    heights = [p.get_height() for p in ax.patches]
    expected = [100 * kv.summarize(runs[k])["brownout_mean"] for k in kv.KERNELS]
    np.testing.assert_allclose(heights, expected)
    assert ax.get_ylabel() == "%" and all(t.get_text().endswith("%") for t in ax.texts)
    with pytest.raises(KeyError, match="no metric"):
        plot.kernel_bars(runs, metric="p42")


# -- stall CDF, brownout and the dashboard's in-place update ---------------------------------
def _fake_run(waits, kernel="v5.12"):
    """The one table stall_cdf reads: the waits of a run's fault attempts."""
    return SimpleNamespace(kernel=kernel, faults=pd.DataFrame({"wait_us": waits}))


def test_stall_cdf_steps_to_each_wait_and_starts_with_the_attempts_that_never_waited():
    """Waits 0, 0, 1 and 3 µs: the curve is 0.5 at the floor (0.1 µs, the two that never
    waited), 0.75 from 1 µs and 1 from 3 µs, on a log axis labelled in µs."""
    ax = plot.stall_cdf({"v5.12": _fake_run([3.0, 0.0, 1.0, 0.0])}, ax=plt.subplots()[1])
    (line,) = ax.get_lines()
    assert line.get_gid() == "cdf|v5.12" and line.get_drawstyle() == "steps-post"
    np.testing.assert_allclose(line.get_xdata(), [0.1, 0.1, 0.1, 1.0, 3.0])
    np.testing.assert_allclose(line.get_ydata(), [0.0, 0.25, 0.5, 0.75, 1.0])
    x, y = line.get_xdata(), line.get_ydata()
    at = {t: y[np.searchsorted(x, t, "right") - 1] for t in (0.1, 0.5, 1.0, 2.0, 3.0)}
    assert at == {0.1: 0.5, 0.5: 0.5, 1.0: 0.75, 2.0: 0.75, 3.0: 1.0}
    assert ax.get_xscale() == "log" and ax.get_xlim() == pytest.approx((0.08, 10.0))
    assert ax.get_ylim() == (0, 1.02)
    assert ax.get_xlabel().startswith("mmu_lock wait per fault attempt (µs")
    assert ax.get_ylabel() == "share of fault attempts"
    assert to_hex(line.get_color()) == KERNEL_STYLES["v5.12"]["color"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["v5.12 (always lock)"]


def test_stall_cdf_draws_a_million_attempts_with_at_most_2001_points():
    """10^6 waits (0..999,999 µs) are drawn through at most 2,001 points, the floor point
    first; the shape is kept: the last point is the longest wait at share 1, the median sits
    at half."""
    waits = np.arange(1_000_000, dtype=float)
    ax = plot.stall_cdf({"v5.15": _fake_run(waits, "v5.15")}, ax=plt.subplots()[1])
    x, y = ax.get_lines()[0].get_data()
    assert len(x) == 2_001
    assert (x[0], y[0]) == (0.1, 0.0) and (x[-1], y[-1]) == (999_999.0, 1.0)
    assert y[np.searchsorted(x, 500_000.0)] == pytest.approx(0.5, abs=1e-3)


def test_a_run_without_faults_draws_a_flat_cdf():
    """No fault attempts: one point, at the floor, share 0."""
    ax = plot.stall_cdf({"v5.12": _fake_run([])}, ax=plt.subplots()[1])
    assert ax.get_lines()[0].get_xydata().tolist() == [[0.1, 0.0]]


def test_update_gives_the_same_lines_new_data_and_the_highlight(runs):
    """plot.update reuses the line artists and leaves them with exactly what a fresh draw of
    the new runs gives; the highlighted kernel is bold (2.6) and the others faint (1.2, alpha
    0.45), in the legend too. A label missing from the runs keeps its line."""
    other = {k: kv.simulate(SMALL.replace(spurious_share=0.5), kernel=k, seed=1) for k in runs}
    _fig, (ax, fresh) = plt.subplots(1, 2)
    plot.stall_cdf(runs, ax=ax)
    before = list(ax.get_lines())
    kept = before[0].get_xydata().copy()
    plot.update(ax, {k: other[k] for k in ("v5.13", "v5.15")}, highlight="v5.15")
    assert ax.get_lines() == before  # the same artists
    np.testing.assert_array_equal(before[0].get_xydata(), kept)  # v5.12 not in the new runs
    plot.stall_cdf(other, ax=fresh, highlight="v5.15")
    for updated, drawn in list(zip(ax.get_lines(), fresh.get_lines(), strict=True))[1:]:
        np.testing.assert_array_equal(updated.get_xydata(), drawn.get_xydata())
    assert [line.get_linewidth() for line in ax.get_lines()] == [1.2, 1.2, 2.6]
    assert [line.get_alpha() for line in ax.get_lines()] == [0.45, 0.45, 1.0]
    assert [h.get_linewidth() for h in ax.get_legend().get_lines()] == [1.2, 1.2, 2.6]
    plot.restyle(ax, highlight=None)
    assert [line.get_linewidth() for line in ax.get_lines()] == [1.8, 1.8, 1.8]


def test_update_moves_the_brownout_lines_to_the_new_runs(runs):
    """On a brownout axes, update sets each line to metrics.brownout of the new run: time in
    ms, the share stalled in %."""
    other = {k: kv.simulate(SMALL.replace(n_vcpus=8), kernel=k, seed=2) for k in runs}
    ax = plot.brownout_curve(runs, ax=plt.subplots()[1])
    plot.update(ax, other)
    curve = metrics.brownout(other["v5.13"])
    line = next(x for x in ax.get_lines() if x.get_gid() == "brownout|v5.13")
    np.testing.assert_allclose(line.get_xdata(), curve["t_us"] / 1000)
    np.testing.assert_allclose(line.get_ydata(), 100 * curve["stalled_share"])


def test_stall_views_label_their_axes_with_units(runs):
    """The CDF's x axis is in µs; the brownout's y in %, its x in ms, from 0 to 100 %."""
    _fig, (a, b) = plt.subplots(1, 2)
    plot.stall_cdf(runs, ax=a)
    plot.brownout_curve(runs, ax=b)
    assert "µs" in a.get_xlabel()
    assert b.get_ylabel() == "vCPUs stalled on mmu_lock (%)"
    assert b.get_xlabel() == "simulated time (ms)" and b.get_ylim() == (0, 100)
    assert [line.get_gid() for line in b.get_lines()] == [f"brownout|{k}" for k in kv.KERNELS]


# -- sweeps: heatmaps and curves -------------------------------------------------------------
def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _sweep_table():
    """Two kernels x 2 vCPU counts x 2 spurious shares x 2 seeds, with made-up measurements:
    p99 = vCPUs x share (x 1.5 on v5.12) + seed, brownout = p99 / 1000."""
    rows = []
    for kernel, scale in (("v5.12", 1.5), ("v5.15", 1.0)):
        for n in (8, 16):
            for share in (0.5, 1.0):
                for seed in (0, 1):
                    p99 = scale * n * share + seed
                    rows.append((kernel, n, share, seed, p99, p99 / 1000))
    columns = ["kernel", "n_vcpus", "spurious_share", "seed", "p99_us", "brownout_mean"]
    return pd.DataFrame(rows, columns=columns)


def test_heatmap_writes_each_cell_averaged_over_seeds_dark_on_light_and_white_on_dark():
    """v5.12's cells are the mean of two seeds (p99 = 1.5 x vCPUs x share + 0.5): 6.5, 12.5,
    12.5 and 24.5 µs, written as "6.5", "12", "12", "24" (two significant digits under 10,
    whole numbers above). seaborn picks the text colour from the cell's luminance: near-black
    (#262626) on the light cells, white on the darkest; the scale starts at 0."""
    table = _sweep_table()
    v512 = table[table.kernel == "v5.12"]
    fig, ax = plt.subplots()
    plot.heatmap(v512, "spurious_share", "n_vcpus", "p99_us", ax=ax)
    cells = {(t.get_position(), t.get_text(), to_hex(t.get_color())) for t in ax.texts}
    # seaborn puts the first row at the top (y = 0.5): the larger vCPU count, 16.
    assert cells == {
        ((0.5, 0.5), "12", "#262626"),
        ((1.5, 0.5), "24", "#ffffff"),
        ((0.5, 1.5), "6.5", "#262626"),
        ((1.5, 1.5), "12", "#262626"),
    }
    mesh = ax.collections[0]
    np.testing.assert_allclose(mesh.get_array().reshape(2, 2), [[12.5, 24.5], [6.5, 12.5]])
    assert mesh.get_clim() == (0.0, 24.5)
    assert to_hex(mesh.cmap(1.0)) == to_hex(plt.get_cmap("YlOrBr")(1.0))
    # y grows upwards on screen: the 8-vCPU row is below the 16-vCPU row.
    ticks = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert set(ticks) == {"8", "16"}
    screen = {k: ax.transData.transform((0, y))[1] for k, y in ticks.items()}
    assert screen["8"] < screen["16"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1"]
    assert ax.get_xlabel() == "spurious_share" and ax.get_ylabel() == "n_vcpus"
    assert fig.axes[-1].get_ylabel() == "p99 fault stall (µs)"  # the colour bar


def test_heatmap_shows_shares_in_percent_with_the_given_labels_and_scale():
    """A share (brownout_mean) is drawn in %: 0.0065 is "0.7", 0.0245 is "2.5"; vmax and the
    axis labels are as given, and colorbar=False draws no colour bar."""
    table = _sweep_table()
    ax = plot.heatmap(
        table[table.kernel == "v5.12"], "spurious_share", "n_vcpus", "brownout_mean",
        ax=plt.subplots()[1], vmax=10, labels={"n_vcpus": "vCPUs"}, colorbar=False,
    )  # fmt: skip
    assert sorted(_texts(ax)) == ["0.7", "1.2", "1.2", "2.5"]
    assert ax.collections[0].get_clim() == (0.0, 10.0)
    assert ax.get_ylabel() == "vCPUs"
    assert len(ax.figure.axes) == 1


def test_heatmap_leaves_a_missing_cell_blank():
    """A point with no measurement is masked: no text in its cell."""
    frame = pd.DataFrame({"a": [1, 2, 1], "b": [10, 10, 20], "p99_us": [1.0, 2.0, 3.0]})
    ax = plot.heatmap(frame, "a", "b", "p99_us", ax=plt.subplots()[1], colorbar=False)
    assert sorted(_texts(ax)) == ["1", "2", "3"]


def test_heatmaps_share_one_colour_scale():
    """One panel per kernel in the order asked, on one scale up to the largest cell of any
    (v5.12's 24.5 µs), one colour bar, and one x label under the row of panels."""
    fig = plot.heatmaps(
        _sweep_table(), "spurious_share", "n_vcpus", "p99_us",
        order=["v5.12", "v5.15"], titles={"v5.12": "before"},
    )  # fmt: skip
    panels, colorbar = fig.axes[:2], fig.axes[2]
    # Where a title sits follows the theme (kv.set_theme puts it on the left): read any of them.
    titles = [ax.get_title("center") or ax.get_title("left") for ax in panels]
    assert titles == ["before", "v5.15"]
    assert [ax.collections[0].get_clim() for ax in panels] == [(0.0, 24.5), (0.0, 24.5)]
    assert sorted(_texts(panels[1])) == ["16", "4.5", "8.5", "8.5"]
    assert colorbar.get_ylabel() == "p99 fault stall (µs)"
    assert [ax.get_xlabel() for ax in panels] == ["", ""]
    assert fig.get_supxlabel() == "spurious_share"
    assert panels[0].get_ylabel() == "n_vcpus" and panels[1].get_ylabel() == ""


def test_curves_average_the_seeds_and_band_their_spread():
    """Two seeds at each x: the line is their mean and the band runs from the lower to the
    higher seed (x=10: 1 and 3 µs; x=100: 2 and 6 µs); a hue with one seed has a line and no
    band. Each line is named at its right end, the marks are drawn, the axes labelled, and
    the log x axis has a tick at each value swept."""
    frame = pd.DataFrame(
        {
            "n": [10, 10, 100, 100, 10, 100],
            "how": ["linear"] * 4 + ["tree"] * 2,
            "p99_us": [1.0, 3.0, 2.0, 6.0, 1.0, 1.0],
        }
    )
    ax = plot.curves(
        frame, "n", "p99_us", hue="how", ax=plt.subplots()[1],
        styles={"tree": {"color": "#0173b2", "linestyle": "--", "marker": "s"}},
        marks={50: "old limit"},
    )  # fmt: skip
    lines = {line.get_gid(): line for line in ax.lines}
    assert set(lines) == {"curve|linear", "curve|tree", "mark|50"}
    np.testing.assert_allclose(lines["curve|linear"].get_xydata(), [[10, 2.0], [100, 4.0]])
    np.testing.assert_allclose(lines["curve|tree"].get_xydata(), [[10, 1.0], [100, 1.0]])
    tree = lines["curve|tree"]
    assert (tree.get_color(), tree.get_linestyle(), tree.get_marker()) == ("#0173b2", "--", "s")
    assert to_hex(lines["curve|linear"].get_color()) == "#333333"  # the first default style
    bands = {c.get_gid(): c for c in ax.collections}
    assert set(bands) == {"spread|linear", "spread|tree"}
    band = bands["spread|linear"].get_paths()[0].vertices
    bounds = {
        x: (band[band[:, 0] == x, 1].min(), band[band[:, 0] == x, 1].max()) for x in (10, 100)
    }
    assert bounds == {10: (1.0, 3.0), 100: (2.0, 6.0)}
    assert all(len(p.vertices) == 0 for p in bands["spread|tree"].get_paths())
    assert _texts(ax) == ["linear", "tree", "old limit"]
    assert ax.get_xscale() == "log" and ax.get_ylim()[0] == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "100"]  # every x swept
    assert ax.get_xlabel() == "n" and ax.get_ylabel() == "p99 fault stall (µs)"
    assert ax.get_legend() is None  # named at their ends instead


def test_curves_without_a_band_and_in_percent():
    """errorbar=None draws the lines alone; a share is drawn in % (0.25 -> 25)."""
    frame = pd.DataFrame({"n": [1, 1, 2, 2], "k": ["a"] * 4, "brownout_mean": [0.2, 0.3, 0.4, 0.6]})
    ax = plot.curves(frame, "n", "brownout_mean", hue="k", ax=plt.subplots()[1], logx=False,
                     errorbar=None)  # fmt: skip
    assert len(ax.collections) == 0  # no band
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [25.0, 50.0])
    assert ax.get_xscale() == "linear"
    assert ax.get_ylabel() == "vCPU time stalled on mmu_lock (%)"


# -- saving -----------------------------------------------------------------------------------


def test_save_refuses_to_overwrite_and_writes_nothing(tmp_path):
    """An existing target stops save before it writes anything (and a bad format too);
    force=True overwrites, leaving no temporary file behind."""
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    (tmp_path / "f.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"f\.png"):
        plot.save(fig, tmp_path / "f", formats=("svg", "png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
    assert (tmp_path / "f.png").read_bytes() == b"mine"
    with pytest.raises(ValueError, match="formats"):
        plot.save(fig, tmp_path / "g", formats=("svg", "jpeg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
    written = plot.save(fig, tmp_path / "f", formats=("svg", "png"), force=True)
    assert written == [tmp_path / "f.svg", tmp_path / "f.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]  # no temporaries


def test_save_writes_readable_reproducible_files(tmp_path):
    """Saving one figure twice gives the same bytes (no date), a well-formed SVG, and
    files with the umask's permissions."""
    kv.set_theme("paper")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    a = plot.save(fig, tmp_path / "a", formats=("svg",))[0]
    b = plot.save(fig, tmp_path / "b", formats=("svg",))[0]
    assert a.read_bytes() == b.read_bytes()
    assert b"<dc:date>" not in a.read_bytes()
    ET.parse(a)
    umask = os.umask(0)
    os.umask(umask)
    assert a.stat().st_mode & 0o777 == 0o666 & ~umask


def _svg(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def test_same_seed_gives_the_same_svg_bytes():
    """With kv.set_theme (svg.hashsalt "kvmviz"), two simulations with the same seed draw
    byte-identical SVGs of the stall CDF and brownout; so do the seaborn-drawn heatmap and
    curves of one table. Another seed draws other bytes."""
    kv.set_theme("paper")
    assert matplotlib.rcParams["svg.hashsalt"] == "kvmviz"

    def stalls(seed) -> bytes:
        runs = {k: kv.simulate(SMALL, kernel=k, seed=seed) for k in kv.KERNELS}
        fig, (a, b) = plt.subplots(1, 2)
        plot.stall_cdf(runs, ax=a)
        plot.brownout_curve(runs, ax=b)
        return _svg(fig)

    first = stalls(3)
    assert stalls(3) == first
    assert stalls(4) != first

    def sweep() -> bytes:
        table = _sweep_table()
        fig = plot.heatmaps(table, "spurious_share", "n_vcpus", "p99_us")
        _fig, ax = plt.subplots()
        plot.curves(table, "n_vcpus", "p99_us", hue="kernel", ax=ax)
        return _svg(fig) + _svg(ax.figure)

    assert sweep() == sweep()


# -- figures that say what they mean (issue 8, §6) ----------------------------------------------


def _pages(layout, slot, first_page: int, pages: int, *, hit=True) -> tuple:
    ram = next(s for s in layout if s.slot == slot and s.as_id == 0)
    start = ram.hva_start + first_page * 4096
    return start, start + pages * 4096, hit


def _frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["hva_start", "hva_end", "hit"])
    return frame.astype({"hva_start": np.uint64, "hva_end": np.uint64, "hit": bool})


def test_a_two_page_hit_in_12_tib_is_drawn_at_least_min_span_wide_at_any_size():
    """To scale, two pages of a 12 TiB slot are ~1e-9 of the axis; on screen the hit is at
    least MIN_SPAN_PT wide (on the hva and the gfn map), before and after the figure is
    resized and zoomed, with a triangle over it."""
    layout = large_vm_layout()
    ranges = _frame([_pages(layout, 1, 5, 2)])
    ax = plot.memslot_map(layout, ranges, gfn_view=True)
    hva_ax, gfn_ax = ax.figure.axes
    hit = gids(hva_ax, "notifiers-")["notifiers-hit"]
    gfn_hit = gids(gfn_ax, "gfn-hits-")["gfn-hits-as0"]
    stored = hit.get_paths()[0].vertices[:, 0]
    assert np.ptp(stored) < 1e-6  # stored to scale
    for size, dpi in (((10, 3), 100), ((4, 2), 72), ((16, 5), 200)):
        ax.figure.set_size_inches(*size)
        ax.figure.set_dpi(dpi)
        ax.figure.canvas.draw()
        for axes, bars in ((hva_ax, hit), (gfn_ax, gfn_hit)):
            widths = screen_widths(axes, bars)
            assert len(widths) == 1
            assert widths[0] >= min_px(ax.figure) - 1e-6
        assert hit.drawn_marks == 1
    left, right = hva_ax.get_xlim()
    hva_ax.set_xlim(left - 50, right + 50)  # zoomed out: the range is smaller still
    ax.figure.canvas.draw()
    assert screen_widths(hva_ax, hit)[0] >= min_px(ax.figure) - 1e-6


def test_coinciding_hits_draw_one_triangle_labelled_with_their_count():
    """200 hits on one page (as relevant_madv in the real trace) are one bar and one
    triangle on screen, labelled ×200; the stored bars stay one per hit."""
    layout = large_vm_layout()
    ranges = _frame([_pages(layout, 1, 5, 1)] * 200 + [_pages(layout, 5, 9, 1)])
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, ranges, ax=ax)
    ax.figure.canvas.draw()
    hit = gids(ax, "notifiers-")["notifiers-hit"]
    assert len(hit.get_paths()) == 201
    assert sorted(hit.drawn_counts) == [1, 200]
    assert hit.drawn_marks == 2
    assert [text for _x, _y, text in hit._labels] == ["×200"]
    assert legend_texts(ax) == ["notifier hits (201)"]


def test_overlapping_misses_merge_into_one_hatched_bar():
    """Fifty overlapping misses are drawn as one hatched bar (not fifty stacked hatches that
    turn solid grey), opaque, in the colours of the legend entry."""
    layout = large_vm_layout()
    start = VMM_HEAP[0]
    rows = [(start + i * 0x1000, start + i * 0x1000 + 0x8000, False) for i in range(50)]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, _frame(rows), ax=ax, regions=[VMM_HEAP])
    ax.figure.canvas.draw()
    miss = gids(ax, "notifiers-")["notifiers-miss"]
    assert len(miss.get_paths()) == 50
    assert miss.drawn_counts == [50] and miss.drawn_marks == 0
    handle = ax.get_legend().legend_handles[0]
    assert to_hex(handle.get_facecolor()) == face(miss) == COLORS["miss_face"]
    assert handle.get_hatch() == miss.get_hatch() == "////"
    assert legend_texts(ax) == ["notifier misses (spurious) (50)"]


def test_map_legends_list_only_the_kinds_of_range_drawn():
    """Misses only: no hit entry (and no gfn-hit entry below); hits only: no miss entry;
    counts=False (a dashboard that moves the bars) lists both kinds, without numbers."""
    layout = large_vm_layout()
    misses = _frame([(VMM_HEAP[0], VMM_HEAP[0] + 0x1000, False)] * 3)
    hits = _frame([_pages(layout, 1, 0, 1)])
    ax = plot.memslot_map(layout, misses, gfn_view=True)
    assert legend_texts(ax) == ["notifier misses (spurious) (3)"]
    assert legend_texts(ax.figure.axes[1]) == ["memslot"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, hits, ax=ax, counts=False)
    assert legend_texts(ax) == ["notifier hits", "notifier misses (spurious)"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, hits, ax=ax)
    assert legend_texts(ax) == ["notifier hits (1)"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, ax=ax)
    assert ax.get_legend() is None


def test_every_slot_says_its_size():
    """The widths grow with the log of size, so every slot carries its size in a label (the
    axis label says so), on the hva and the gfn map."""
    layout = large_vm_layout()
    ax = plot.memslot_map(layout, gfn_view=True)
    for axes in ax.figure.axes:
        texts = " ".join(t.get_text() for t in axes.texts)
        for slot in layout:
            assert f"slot {slot.slot}" in texts and plot._size(slot.size_bytes) in texts
        assert "log of size" in axes.get_xlabel()


def test_stall_by_kernel_draws_the_distribution_beside_the_readers_and_writers_numbers(runs):
    """Two axes: a CDF line per kernel, and a bar per kernel of the p99 stall with the
    writers' mean wait written under it, both equal to summarize()'s."""
    ax = plot.stall_by_kernel(runs)
    cdf, bars = ax.figure.axes
    assert cdf is ax
    assert [line.get_gid() for line in cdf.get_lines()] == [f"cdf|{k}" for k in kv.KERNELS]
    drawn = {p.get_gid(): p.get_height() for p in bars.patches if p.get_gid()}
    for kernel, run in runs.items():
        summary = kv.summarize(run)
        assert drawn[f"bar|{kernel}"] == pytest.approx(summary["p99_us"])
    ticks = [t.get_text() for t in bars.get_xticklabels()]
    for tick, kernel in zip(ticks, kv.KERNELS, strict=True):
        wait = kv.summarize(runs[kernel])["writer_wait_mean_us"]
        assert tick.startswith(kernel) and f"writers wait\n{plot._value_label(wait, 'µs')}" in tick
    _fig, pair = plt.subplots(1, 2)
    assert plot.stall_by_kernel(runs, ax=pair, metric="mean_us") is pair[0]
    with pytest.raises(ValueError, match="pair"):
        plot.stall_by_kernel(runs, ax=pair[0])
    with pytest.raises(ValueError, match="empty"):
        plot.stall_by_kernel({})


def test_curves_tick_every_value_swept_on_a_log_axis():
    """64, 208 and 416 vCPUs fall between decades: each gets its own labelled tick."""
    frame = pd.DataFrame({"n_vcpus": [64, 208, 416], "k": ["a"] * 3, "p99_us": [1.0, 2.0, 3.0]})
    ax = plot.curves(frame, "n_vcpus", "p99_us", hue="k", ax=plt.subplots()[1])
    ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "208", "416"]
