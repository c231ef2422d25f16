"""kvmviz.gallery: the named blog figures and animations, each drawn by one builder.

`kvmviz figures`, `examples/*.py` and the README's image call these builders; here every figure
renders, one seed gives the same bytes, :func:`kvmviz.gallery.render_all` is all or nothing,
and the README's image is exactly what its builder draws. (That the examples write the
builders' bytes is tested in test_examples.py.)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib as mpl
import pytest
from matplotlib.figure import Figure

import kvmviz as kv
from kvmviz import animate, cli, gallery, metrics

ROOT = Path(__file__).resolve().parent.parent
DOCS_IMG = ROOT / "docs" / "img"
# Figures whose runs are small (8 vCPUs, or a notification stream alone): fast to render.
CHEAP = ["memslots-q35", "lock-timeline-8-vcpus"]
# Figure name -> (its own width in inches, number of Axes at that width).
EXPECTED = {
    "memslots-large-vm": (10.0, 2),
    "memslots-q35": (10.0, 2),
    "stall-cdf": (6.4, 1),
    "brownout": (6.4, 1),
    "kernel-comparison": (10.0, 3),
    "stall-by-kernel": (10.0, 2),
    "stall-by-kernel-volatile": (10.0, 2),
    "stall-split": (10.0, 2),
    "lock-timeline-8-vcpus": (10.0, 2),
    "lock-timeline-416-vcpus": (10.0, 2),
    "before-after": (10.0, 2),
    "commit-8931a454ae": (10.0, 2),
    "follow-up-071064f14d87": (10.0, 2),
    "headline-ranges": (10.0, 4),
}
# The chapter-04 figures, drawn from the static setup (kvmviz.presets.static_setup).
STATIC_FIGURES = [
    "stall-cdf",
    "brownout",
    "kernel-comparison",
    "stall-by-kernel",
    "lock-timeline-416-vcpus",
    "before-after",
]
ANIMATIONS = ["queue-v5.12-vs-v5.15", "memslot-arrivals-v5.13"]
TINY = kv.Scenario(n_vcpus=4, duration_us=1_000.0, notifier_rate_hz=20_000.0)


def _files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def render():
    """One render at seed 0, shared, so that each scenario is simulated once for the module."""
    return gallery._Render(0)


def _tiny_animation(seed: int) -> animate.Animation:
    """A two-frame memslot animation of a 4-vCPU, 1 ms run: an animation that costs little."""
    return animate.memslot_animation(
        kv.simulate(TINY, "v5.13", seed=seed), n_events=2, frames_per_event=1
    )


@pytest.fixture
def tiny_animations(monkeypatch):
    """The standard animations replaced by one tiny one, named "tiny"."""
    monkeypatch.setattr(gallery, "_STANDARD", {"tiny": _tiny_animation})


# --------------------------------------------------------------------------------------------
# The figures.
# --------------------------------------------------------------------------------------------
def test_the_named_figures_tables_and_animations():
    """The gallery names fourteen figures (the notebooks', the blog's with the commit's and
    its follow-up's, the README's headline-ranges), two text tables and two animations, in
    this order."""
    assert list(gallery.FIGURES) == list(EXPECTED)
    assert list(gallery.TABLES) == ["contention-v5.12", "contention-v5.15"]
    assert list(gallery._STANDARD) == ANIMATIONS


def test_builders_are_private_and_names_unique():
    """Builders are reached through FIGURES (or render(name)): no public gallery name repeats
    a name of kvmviz, kvmviz.plot or kvmviz.metrics (kv.brownout stays the metric alone)."""
    assert all(builder.__name__.startswith("_fig_") for builder in gallery.FIGURES.values())
    public = set(gallery.__all__)
    assert public == {
        "ANIMATION_FORMATS",
        "FIGURES",
        "FIGURE_FORMATS",
        "FORMATS",
        "MEMSLOT_SCENARIO",
        "QUEUE_SCENARIO",
        "TABLES",
        "WIDTHS",
        "caption",
        "render",
        "render_all",
        "render_animations",
        "standard_animations",
        "table",
    }
    others = set(dir(kv)) | set(kv.plot.__all__) | set(kv.metrics.__all__)
    assert public & others == {"FIGURE_FORMATS", "FORMATS"}
    # re-exported for the CLI, not a second meaning (FORMATS: the name before FIGURE_FORMATS)
    assert gallery.FIGURE_FORMATS is gallery.FORMATS is kv.plot.FIGURE_FORMATS
    assert not hasattr(gallery, "EXTRA") and not hasattr(gallery, "_load_extras")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_figure_renders(name, render):
    """Each builder draws a Figure of its own width with its number of panels, no taller
    than it is wide."""
    fig = gallery.FIGURES[name](render)
    width, n_axes = EXPECTED[name]
    assert isinstance(fig, Figure)
    assert fig.get_figwidth() == pytest.approx(width)
    assert 0.3 * width < fig.get_figheight() < width
    assert len(fig.axes) == n_axes


def _text_size(fig) -> float:
    return fig._suptitle.get_fontsize()


def test_a_context_makes_the_text_larger_not_the_figure():
    """The talk context's text is 1.875 times the paper's (seaborn's scales, 1.5 / 0.8), in a
    figure of the same width: larger relative to the figure (the figure used to grow with
    it). The height may follow the text; unknown names are refused."""
    with mpl.rc_context():
        kv.set_theme("paper")
        paper = gallery.render("memslots-q35", seed=0)
        kv.set_theme("talk")
        talk = gallery.render("memslots-q35", seed=0, context="talk")
    assert paper.get_figwidth() == talk.get_figwidth() == 10.0
    assert _text_size(talk) / _text_size(paper) == pytest.approx(1.875)
    assert talk.get_figheight() >= paper.get_figheight()
    assert not hasattr(gallery, "_SIZE_SCALE")
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        gallery.render("nope")


def test_width_lays_the_figure_out_again():
    """width= makes the figure that wide (a name of WIDTHS or inches), text at the context's
    size: at the column's 6.5 in the three bar charts of kernel-comparison are stacked, at
    the wide 10 in they stand side by side; the height follows."""
    assert gallery.WIDTHS == {"column": 6.5, "wide": 10.0}
    with mpl.rc_context():
        kv.set_theme("paper")
        column = gallery.render("kernel-comparison", width="column")
        wide = gallery.render("kernel-comparison", width="wide")
        inches = gallery.render("kernel-comparison", width=7.25)
    assert (column.get_figwidth(), wide.get_figwidth(), inches.get_figwidth()) == (6.5, 10, 7.25)
    lefts = {round(ax.get_position().x0, 2) for ax in column.axes}
    assert len(lefts) == 1  # one column of panels
    assert len({round(ax.get_position().y0, 2) for ax in wide.axes}) == 1  # one row
    assert column.get_figheight() > 1.5 * wide.get_figheight()
    assert _text_size(column) == _text_size(wide)
    for bad in ("narrow", 2.0, 31, float("nan")):
        with pytest.raises(ValueError, match="width"):
            gallery.render("brownout", width=bad)


def test_a_figure_of_your_own_vm_in_one_call():
    """stall-split with scenario=static_setup(n_vcpus=96): both setups applied to that VM
    (the static's and the volatile's notifications on 96 vCPUs), said in its caption and
    panel titles; the runs are the VM's."""
    vm = kv.presets.static_setup(n_vcpus=96)
    fig = gallery.render("stall-split", scenario=vm)
    assert "96-vCPU VM" in gallery.caption(fig) == fig.get_suptitle()
    static, volatile = (ax.get_title("left") for ax in fig.axes)
    assert static.startswith("static setup\n96 vCPUs, every MMU notification spurious")
    assert volatile.startswith("volatile setup\n96 vCPUs, 3,000 of 5,000 notifications/s")
    assert kv.presets.with_setup(vm, "volatile") == kv.presets.volatile_setup(n_vcpus=96)
    table = metrics.kernel_table(
        {
            k: kv.simulate(kv.presets.volatile_setup(n_vcpus=96), k, seed=0)
            for k in kv.kernels.KERNELS_2021
        }
    )
    totals = {t.get_gid(): t.get_text() for t in fig.axes[1].texts if t.get_visible()}
    assert totals["split-total|v5.12"] == f"{100 * table.loc['v5.12', 'brownout_mean']:.1f}%"


def test_kernels_any_subset_in_any_order():
    """kernels= draws those kernels in that order; unknown or repeated kernels, a lone
    string, or kernels for a memslot map (which simulates none) are refused in words."""
    fig = gallery.render("stall-cdf", kernels=["v5.15", "v5.13"])
    assert [line.get_gid() for line in fig.axes[0].get_lines()] == ["cdf|v5.15", "cdf|v5.13"]
    bars = gallery.render("kernel-comparison", kernels=("v5.13",))
    assert [t.get_text() for t in bars.axes[0].get_xticklabels()] == ["v5.13\n8931a454ae"]
    assert "on one kernel" in bars.get_suptitle()
    for bad, match in (
        (["v5.12", "v9"], "unknown: v9"),
        (["v5.12", "v5.12"], "each kernel once"),
        ("v5.12", "expected a list"),
        ([], r"expected releases from v5\.12 to v6\.18"),
        (["v5.12", "6.19"], r"v5\.12 to v6\.18.*unknown: 6\.19"),
        (["v5.15", "5.15.3"], "each kernel once"),
    ):
        with pytest.raises(ValueError, match=match):
            gallery.render("stall-cdf", kernels=bad)
    with pytest.raises(ValueError, match="no kernel"):
        gallery.render("memslots-q35", kernels=["v5.12"])
    with pytest.raises(TypeError, match="Scenario"):
        gallery.render("stall-cdf", scenario={"n_vcpus": 8})


@pytest.mark.parametrize(
    ("name", "kernels", "commit"),
    [
        ("commit-8931a454ae", ("v5.12", "v5.13"), "8931a454ae: an unpaired notifier callback"),
        ("follow-up-071064f14d87", ("v5.13", "v5.15"), "071064f14d87: a start/end pair"),
    ],
)
def test_the_commit_figures_state_both_brownouts(name, kernels, commit):
    """The figure for the commit (v5.12 against v5.13) and for its follow-up (v5.13 against
    v5.15): the commit's change, then each kernel's brownout from its own run, written as
    the README and the dashboard write it (kvmviz._shared._prose.pct; "none" at exactly 0)."""
    from kvmviz._shared._prose import pct

    fig = gallery.render(name)
    cdf, brownout = fig.axes
    assert [line.get_gid() for line in cdf.get_lines()] == [f"cdf|{k}" for k in kernels]
    drawn = [line.get_gid() for line in brownout.get_lines() if line.get_gid()]
    assert drawn == [f"brownout|{k}" for k in kernels]
    shares = {
        k: kv.simulate(kv.presets.static_setup(), k, seed=0).summary()["brownout_mean"]
        for k in kernels
    }
    words = {k: "none" if v == 0 else pct(v) for k, v in shares.items()}
    first, second = kernels
    assert fig.get_suptitle() == (
        f"{commit} takes mmu_lock only if its range hits a memslot. The static setup (416 "
        f"vCPUs, every MMU notification spurious): {words[first]} of the VM's vCPU time "
        f"stalled on {first}, {words[second]} on {second}"
    )
    assert shares[first] > shares[second]
    # before-after with the same kernels is the same figure without the commit's sentence.
    same = gallery.render("before-after", kernels=kernels)
    assert fig.get_suptitle().endswith(same.get_suptitle())


def test_without_title_the_caption_is_text(tmp_path):
    """title=False leaves the suptitle out, caption(fig) still gives it; render_all(...,
    title=False) writes it beside each figure as NAME.txt, one line, and counts it in the
    refusal to overwrite."""
    with_title = gallery.render("memslots-q35")
    without = gallery.render("memslots-q35", title=False)
    assert without.get_suptitle() == ""
    assert gallery.caption(without) == with_title.get_suptitle() != ""
    with pytest.raises(ValueError, match="no caption"):
        gallery.caption(Figure())
    written = gallery.render_all(
        tmp_path, only=["memslots-q35"], formats=("svg",), animations=False, title=False
    )
    assert [p.name for p in written] == ["memslots-q35.svg", "memslots-q35.txt"]
    assert (tmp_path / "memslots-q35.txt").read_text() == gallery.caption(without) + "\n"
    (tmp_path / "memslots-q35.svg").unlink()
    with pytest.raises(FileExistsError, match=r"memslots-q35\.txt"):
        gallery.render_all(
            tmp_path, only=["memslots-q35"], formats=("svg",), animations=False, title=False
        )


def _texts(fig, prefix: str = "") -> dict[str, str]:
    """The visible texts of a figure whose gid starts with ``prefix``, by gid."""
    return {
        t.get_gid(): t.get_text()
        for ax in fig.axes
        for t in ax.texts
        if (t.get_gid() or "").startswith(prefix) and t.get_visible()
    }


def test_headline_ranges_shows_both_setups_and_names_its_seeds(render):
    """The headline-ranges figure: the tornado of kvmviz.experiments.sensitivity on the static
    setup (top) and the volatile one (bottom), means of four seeds from the render's seed
    (said in the caption and on both axes, since the other figures show seed 0 alone: its
    p99 differs), brownout in % then p99 stall per fault. The rows are named in words with
    their ranges in their units, never by Python names. On the static setup v5.15 stalls
    nothing over most parameters' ranges: its rows say so in words (no bar length)."""
    fig = gallery.FIGURES["headline-ranges"](render)
    assert fig.get_suptitle() == (
        "Each bar one parameter over its plausible range (dot: the setup's value), TDP MMU: "
        "means of seeds 0-3, not seed 0 alone"
    )
    top, _, bottom, _ = fig.axes
    assert top.get_title("left").startswith("The static setup (416 vCPUs, every MMU")
    assert bottom.get_title("left").startswith("The volatile setup (416 vCPUs, 3,000 of 5,000")
    assert [ax.get_xlabel() for ax in fig.axes[2:]] == [
        "share of the VM's vCPU time stalled (%), mean of seeds 0-3",
        "p99 stall per fault (µs), mean of seeds 0-3",
    ]
    rows = {t.get_text() for t in top.get_yticklabels()}
    assert rows == {
        "notifications per second\n200 – 10,000",
        "contention paid inside the lock\n0 – 100 %",
        "read-lock contention per vCPU\n0.1 – 0.25 µs",
        "spurious notifications\n50 – 100 %",
        "TLB flush cost exponent\n0 – 1",
    }
    assert not any("_" in row for row in rows)
    brownout_right = bottom.get_xlim()[1]
    worst = render.sensitivity(gallery.VOLATILE, kv.kernels.KERNELS_2021)["brownout_mean"].max()
    assert 100 * worst <= brownout_right < 110 * worst  # in %, not a 0-1 fraction
    for scenario in (gallery.STATIC, gallery.VOLATILE):
        table = render.sensitivity(scenario, kv.kernels.KERNELS_2021)
        assert sorted(table["kernel"].unique()) == ["v5.12", "v5.13", "v5.15"]
    static = render.sensitivity(gallery.STATIC, kv.kernels.KERNELS_2021)
    zero = static[static["kernel"] == "v5.15"].groupby("parameter")["brownout_mean"].max() == 0
    notes = _texts(fig, "note|v5.15|")
    assert zero.any() and {g.split("|")[2] for g in notes} == set(zero[zero].index)
    assert set(notes.values()) == {
        "v5.15: no fault stalled at any value",
    }


def test_the_chapter_04_figures_open_on_the_static_setup(render):
    """stall-cdf, brownout, kernel-comparison, stall-by-kernel, the 416-vCPU timeline and
    before-after draw the static setup (every notification spurious): each says so in its
    caption, and where v5.15 appears it is said, in words, to stall nothing."""
    assert gallery.STATIC == kv.presets.static_setup()
    for name in STATIC_FIGURES:
        fig = gallery.FIGURES[name](render)
        assert fig.get_suptitle().startswith("The static setup (416 vCPUs, every MMU"), name
        if name != "lock-timeline-416-vcpus":
            notes = _texts(fig, "note|v5.15")
            assert notes and all("no " in text and "stalled" in text for text in notes.values())


def test_before_after_caption_is_true_to_its_runs(render):
    """The caption's numbers are the runs' own, as the README and the dashboard write them
    (kvmviz._shared._prose.pct: "9.1 %"), and "none" for v5.15, whose brownout on the static setup
    is exactly 0."""
    from kvmviz._shared._prose import pct

    fig = gallery.FIGURES["before-after"](render)
    before = kv.simulate(kv.presets.static_setup(), "v5.12", seed=0).summary()["brownout_mean"]
    after = kv.simulate(kv.presets.static_setup(), "v5.15", seed=0).summary()["brownout_mean"]
    assert after == 0 < before
    assert fig.get_suptitle().endswith(
        f": {pct(before)} of the VM's vCPU time stalled on v5.12, none on v5.15"
    )


def test_stall_split_shows_the_miss_part_vanish_and_the_hit_part_stay(render):
    """stall-split: the static setup (left), where every part is behind misses and v5.15 has
    none; the volatile setup (right), where v5.15's part behind misses is 0 (said in words)
    and its part behind hits stays."""
    fig = gallery.FIGURES["stall-split"](render)
    static, volatile = fig.axes
    assert static.get_title("left").startswith("static setup\n")
    assert volatile.get_title("left").startswith("volatile setup\n")
    assert _texts(fig, "note|") == {"note|v5.15": "no fault\nstalled"}
    parts = {p.get_gid(): p.get_height() for p in volatile.patches if p.get_visible()}
    assert "split|v5.15|miss" not in parts and parts["split|v5.15|hit"] > 0
    assert parts["split|v5.12|miss"] > 0 and parts["split|v5.12|hit"] > 0
    labels = {t.get_gid(): t.get_text() for t in volatile.texts if t.get_visible()}
    assert labels["split-label|v5.15|miss"] == "misses: 0%"
    hits_only = {g for g in parts if g.endswith("|hit")}
    assert not any(p.get_visible() for p in static.patches if p.get_gid() in hits_only)


def test_stall_split_draws_seed_0_with_its_range_over_four_seeds(render):
    """stall-split's bars are the render's seed (the dashboard's and chapter 04's seed 0, not
    a mean), each total marked with a range from the lowest to the highest brownout of
    seeds 0-3, said in the caption and the legend; the total is written above the range."""
    fig = gallery.FIGURES["stall-split"](render)
    assert fig.get_suptitle().endswith("(seed 0; marks: the range over seeds 0-3)")
    for ax, setup in zip(fig.axes, ("static", "volatile"), strict=True):
        scenario = kv.presets.setup(setup)
        per_seed = {
            k: [kv.simulate(scenario, k, seed=s).summary()["brownout_mean"] for s in range(4)]
            for k in kv.kernels.KERNELS_2021
        }
        bars = {p.get_gid(): p for p in ax.patches if p.get_visible()}
        ranges = {line.get_gid(): line for line in ax.get_lines() if line.get_visible()}
        totals = {t.get_gid(): t for t in ax.texts if t.get_visible()}
        for kernel, shares in per_seed.items():
            top = sum(bars[g].get_height() for g in bars if g.startswith(f"split|{kernel}|"))
            assert top == pytest.approx(100 * shares[0])
            if shares[0] == 0:
                assert f"split-range|{kernel}" not in ranges
                continue
            low, high = ranges[f"split-range|{kernel}"].get_ydata()
            assert (low, high) == pytest.approx((100 * min(shares), 100 * max(shares)))
            assert low <= top <= high
            assert totals[f"split-total|{kernel}"].xy[1] == pytest.approx(max(top, high))
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend[-1] == "lowest to highest, seeds 0-3"


@pytest.mark.parametrize("name", ["lock-timeline-8-vcpus", "lock-timeline-416-vcpus"])
def test_timeline_figures_show_whole_stalls(name, render):
    """The timeline figures' windows (kvmviz.metrics.busiest_window) hold the longest writer wait
    and cut no stall: every wait for mmu_lock that overlaps the window begins and ends in it."""
    fig = gallery.FIGURES[name](render)
    lanes = fig.axes[0]
    run = render.run(gallery.SMALL_VM if "8" in name else gallery.STATIC, "v5.12")
    scale = 1e-3 if "(ms)" in fig.axes[1].get_xlabel() else 1.0
    start, end = (x / scale for x in lanes.get_xlim())
    waited = run.lock[run.lock["wait_us"] > 0]
    overlapping = waited[(waited["t_request_us"] < end) & (waited["t_grant_us"] > start)]
    assert len(overlapping) > 0
    tolerance = 1e-6 * max(abs(end), 1.0)
    assert (overlapping["t_request_us"] >= start - tolerance).all()
    assert (overlapping["t_grant_us"] <= end + tolerance).all()
    worst = run.notifiers.loc[run.notifiers["wait_us"].idxmax()]
    assert start <= worst["t_arrive_us"] and worst["t_grant_us"] <= end


@pytest.mark.parametrize("name", ["stall-by-kernel", "stall-by-kernel-volatile"])
def test_stall_by_kernel_figures_have_both_panels(name, render):
    """The static per-kernel figure, on each setup: a per-fault CDF line and a split bar for
    each kernel; on the volatile setup v5.15's bar stands, behind hits only."""
    cdf, split = gallery.FIGURES[name](render).axes
    assert [line.get_gid() for line in cdf.get_lines()] == ["cdf|v5.12", "cdf|v5.13", "cdf|v5.15"]
    drawn = {p.get_gid() for p in split.patches if p.get_visible()}
    assert {"split|v5.12|miss", "split|v5.13|miss"} <= drawn
    assert ("split|v5.15|hit" in drawn) == (name == "stall-by-kernel-volatile")


def test_contention_tables_are_the_metric_of_the_large_vm():
    """table("contention-v5.12") is kvmviz.metrics.contention_text of the 416-vCPU VM's run on
    v5.12 at that seed; unknown names are refused."""
    text = gallery.table("contention-v5.12", seed=0)
    run = kv.simulate(gallery.LARGE_VM, "v5.12", seed=0)
    assert text == metrics.contention_text(run)
    assert text.split()[:2] == ["contended", "total"]
    with pytest.raises(ValueError, match="unknown table 'nope'"):
        gallery.table("nope")


@pytest.mark.parametrize(
    "path", sorted(p for p in DOCS_IMG.iterdir() if p.stem in gallery.FIGURES), ids=str
)
def test_docs_images_are_what_their_builders_draw(path, tmp_path):
    """Every figure under docs/img (the README's headline-ranges among them) is byte for byte
    what its builder draws at seed 0, paper context: `kvmviz figures` would write the same file.
    (If a view changed on purpose: python examples/<figure>.py docs/img --force.)"""
    [written] = gallery.render_all(
        tmp_path, only=[path.stem], formats=(path.suffix[1:],), animations=False
    )
    assert written.read_bytes() == path.read_bytes()


def test_the_readme_figure_is_in_the_gallery():
    """The README opens with docs/img/stall-split.png (the static setup's stalls vanish on
    v5.15, the volatile one's behind hits stay) and shows headline-ranges (how far they move);
    every docs/img image it shows is a figure of the gallery (so the test above checks its
    bytes)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = [Path(part.split(")")[0]).stem for part in readme.split("](docs/img/")[1:]]
    assert images[0] == "stall-split"
    assert "headline-ranges" in images
    assert set(images) <= set(gallery.FIGURES)


# --------------------------------------------------------------------------------------------
# render_all: reproducible, all or nothing.
# --------------------------------------------------------------------------------------------
def test_same_seed_same_bytes(tmp_path):
    """Two renders with one seed give byte-identical SVG (and PNG); another seed differs."""
    first = gallery.render_all(tmp_path / "a", only=CHEAP, animations=False)
    gallery.render_all(tmp_path / "b", only=CHEAP, animations=False)
    assert [p.name for p in first] == [
        "memslots-q35.svg",
        "memslots-q35.png",
        "lock-timeline-8-vcpus.svg",
        "lock-timeline-8-vcpus.png",
    ]
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for path in first:
        if path.suffix == ".svg":
            ET.parse(path)
            assert b"<dc:date>" not in path.read_bytes()
    gallery.render_all(tmp_path / "c", only=["lock-timeline-8-vcpus"], seed=1, animations=False)
    name = "lock-timeline-8-vcpus.svg"
    assert (tmp_path / "c" / name).read_bytes() != (tmp_path / "a" / name).read_bytes()


def test_svg_bytes_do_not_depend_on_the_other_formats_asked_for(tmp_path):
    """`--format png,svg` and `--format svg` give the same SVG (it is always rendered first)."""
    name = "lock-timeline-8-vcpus"
    gallery.render_all(tmp_path / "both", only=[name], formats=("png", "svg"), animations=False)
    gallery.render_all(tmp_path / "svg", only=[name], formats=("svg",), animations=False)
    assert (tmp_path / "both" / f"{name}.svg").read_bytes() == (
        tmp_path / "svg" / f"{name}.svg"
    ).read_bytes()


def test_render_is_what_render_all_writes(tmp_path):
    """render(name) under set_theme, saved with kvmviz.plot.save, writes render_all's bytes:
    the examples' recipe."""
    gallery.render_all(tmp_path / "all", only=["memslots-q35"], animations=False)
    with mpl.rc_context():
        kv.set_theme("paper")
        kv.plot.save(gallery.render("memslots-q35", seed=0), tmp_path / "one" / "memslots-q35")
    assert _files(tmp_path / "one") == _files(tmp_path / "all")


def test_refuses_to_overwrite_and_writes_nothing(tmp_path):
    """One existing target is enough: nothing at all is written, and it is left alone."""
    (tmp_path / "brownout.png").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="brownout"):
        gallery.render_all(tmp_path, animations=False)
    assert _files(tmp_path) == {"brownout.png": b"keep me"}
    written = gallery.render_all(
        tmp_path, only=["memslots-q35"], formats=("png",), animations=False
    )
    assert written == [tmp_path / "memslots-q35.png"]
    again = gallery.render_all(
        tmp_path, only=["memslots-q35"], formats=("png",), force=True, animations=False
    )
    assert again == [tmp_path / "memslots-q35.png"]
    assert (tmp_path / "brownout.png").read_bytes() == b"keep me"


def test_theme_does_not_leak(tmp_path):
    """render_all applies the theme for its own figures only."""
    before = dict(mpl.rcParams)
    gallery.render_all(tmp_path, only=["memslots-q35"], formats=("svg",), animations=False)
    assert dict(mpl.rcParams) == before


def test_unknown_names_and_formats_are_refused(tmp_path):
    """A figure name or a format the gallery does not know is refused before any file."""
    with pytest.raises(ValueError, match="unknown figures"):
        gallery.render_all(tmp_path, only=["nope"], animations=False)
    with pytest.raises(ValueError, match="formats"):
        gallery.render_all(tmp_path, formats=("svg", "bmp"), animations=False)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# The animations, with the figures and alone.
# --------------------------------------------------------------------------------------------
def test_animations_land_with_the_figures(tmp_path, tiny_animations):
    """render_all writes the animations (HTML, GIF) first, into the same staging folder, and
    they count in the refusal to overwrite: an existing GIF stops the whole run."""
    written = gallery.render_all(tmp_path / "out", only=["memslots-q35"], formats=("svg",))
    assert written == [
        tmp_path / "out" / "tiny.html",
        tmp_path / "out" / "tiny.gif",
        tmp_path / "out" / "memslots-q35.svg",
    ]
    assert (tmp_path / "out" / "tiny.gif").read_bytes().startswith(b"GIF89a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left
    (tmp_path / "out" / "memslots-q35.svg").unlink()
    with pytest.raises(FileExistsError, match=r"2 existing file\(s\).*tiny\.html, tiny\.gif"):
        gallery.render_all(tmp_path / "out", only=["memslots-q35"], formats=("svg",))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tiny.gif", "tiny.html"]
    skipped = gallery.render_all(
        tmp_path / "out", only=["memslots-q35"], formats=("svg",), animations=False
    )
    assert skipped == [tmp_path / "out" / "memslots-q35.svg"]


def test_render_animations_writes_each_format_and_refuses_first(tmp_path, tiny_animations):
    """render_animations writes each animation in each format; an existing file is refused
    before any animation is built; formats other than html and gif are refused."""
    written = gallery.render_animations(tmp_path / "out", seed=0)
    assert written == [tmp_path / "out" / "tiny.html", tmp_path / "out" / "tiny.gif"]
    assert (tmp_path / "out" / "tiny.html").read_bytes().startswith(b"<!DOCTYPE html>")

    def never(seed):
        raise AssertionError("an animation was built")

    gallery._STANDARD["tiny"] = never
    with pytest.raises(FileExistsError, match=r"tiny\.gif"):
        gallery.render_animations(tmp_path / "out", formats=("gif",))
    gallery._STANDARD["tiny"] = _tiny_animation
    assert gallery.render_animations(tmp_path / "out", formats=("gif",), force=True) == [
        tmp_path / "out" / "tiny.gif"
    ]
    with pytest.raises(ValueError, match="formats"):
        gallery.render_animations(tmp_path / "x", formats=("svg",))


def test_standard_animations():
    """The standard animations are built (not rendered here) with their full length: 120
    frames of the queue, 24 events of 5 frames on the memslot map; unknown names refused."""
    standard = gallery.standard_animations(seed=0)
    assert list(standard) == ANIMATIONS
    assert [len(a) for a in standard.values()] == [120, 120]
    with pytest.raises(ValueError, match="unknown animations"):
        gallery.standard_animations(names=["nope"])


def test_the_queue_animation_spans_the_story_window(monkeypatch):
    """The queue animation's window is kvmviz.animate.story_window of QUEUE_SCENARIO's two
    kernels (a static setup: every notification spurious), exactly 60 µs wide."""
    calls = []
    monkeypatch.setattr(
        animate, "queue_animation", lambda runs, *window, **kw: calls.append((runs, window, kw))
    )
    gallery.standard_animations(seed=0, names=["queue-v5.12-vs-v5.15"])
    [(runs, (start, end), options)] = calls
    assert list(runs) == ["v5.12", "v5.15"]
    assert runs["v5.12"].scenario == gallery.QUEUE_SCENARIO
    assert gallery.QUEUE_SCENARIO.spurious_share == 1.0
    assert (start, end) == animate.story_window(runs, 60.0).window
    assert end - start == pytest.approx(60.0)
    assert options == {"n_frames": 120}


# --------------------------------------------------------------------------------------------
# `kvmviz figures`, end to end with the real builders.
# --------------------------------------------------------------------------------------------
def test_cli_figures_end_to_end(tmp_path, capsys):
    """`kvmviz figures` writes every figure and prints each path; run again without --force,
    it exits 2, says why, and writes nothing."""
    out = tmp_path / "figs"
    args = ["figures", "--out", str(out), "--format", "svg", "--no-animations"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("# kvmviz figures --out")
    assert printed[1:] == [str(out / f"{name}.svg") for name in EXPECTED]
    for name in EXPECTED:
        assert ET.parse(out / f"{name}.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    before = _files(out)
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    assert (
        f"refusing to overwrite {len(EXPECTED)} existing file(s)" in error
        and "nothing was written" in error
    )
    assert _files(out) == before
    assert cli.main(["figures", "--out", str(out), "--format", "svg,gif"]) == 2
    assert "unknown format(s) gif" in capsys.readouterr().err
