"""The house theme: semantic colours and the styles that tell kernels and policies apart."""

from __future__ import annotations

import copy
import io
import itertools
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.lines import Line2D
from matplotlib.text import Text

import kvmviz as kv
from kvmviz import theme
from kvmviz.engine import scripted_run


def test_policy_styles_tell_the_policies_apart():
    """The three policies' curves differ in colour and line style and are labelled by
    theme.POLICY_STYLES."""
    runs = {p: scripted_run([0, 1, 2], [False, True, False], [3, 1, 1], p) for p in kv.POLICIES}
    ax = kv.plot.stall_cdf(runs)
    styles = {(line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len(styles) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["qrwlock (fair)", "reader-pref (unfair)", "spinlock (exclusive)"]
    plt.close("all")
    assert np.isfinite(runs["qrwlock"].faults["wait_us"]).all()


def test_the_parts_of_a_brownout_differ_in_colour_and_hatch():
    """theme.BEHIND_STYLES: one style per part of metrics.BEHIND, each in a semantic colour
    (grey miss, vermilion hit, blue faults) and a hatch of its own, so the stacked bars of
    plot.stall_split survive grey-scale printing."""
    styles = kv.theme.BEHIND_STYLES
    assert tuple(styles) == kv.metrics.BEHIND
    assert [styles[p]["color"] for p in styles] == [
        kv.theme.COLORS["miss"],
        kv.theme.COLORS["hit"],
        kv.theme.COLORS["read"],
    ]
    assert len({styles[p]["hatch"] for p in styles}) == 3
    assert styles["miss"]["hatch"] == kv.theme.HATCHES["miss"]


# -- styles people use (issue 19 §2): light and dark, contexts, sheets, owned settings ----------
@pytest.fixture
def restored():
    """Run a test inside its own matplotlib settings and kernel colours."""
    with mpl.rc_context():
        yield
        kv.set_theme()  # also forgets kernel colours a test gave


def test_the_theme_owns_its_settings_nothing_leaks(restored):
    """A savefig.facecolor of one's own and an earlier dark theme leave no trace in a later
    light theme: every key the theme sets is the light table's, and a saved figure's corner is
    white. Settings the theme does not make are left alone."""
    mpl.rcParams["savefig.facecolor"] = "red"
    mpl.rcParams["savefig.transparent"] = True
    mpl.rcParams["figure.figsize"] = (3.0, 2.0)
    kv.set_theme("talk", style="dark")
    assert mpl.rcParams["savefig.facecolor"] == theme.DARK_BACKGROUND
    assert mpl.rcParams["savefig.transparent"] is False
    kv.set_theme("paper", style="light")
    want = theme.rc_params("paper", "light")
    assert {k: mpl.rcParams[k] for k in want} == {
        k: mpl.rcParams.validate[k](v) for k, v in want.items()
    }
    assert mpl.rcParams["savefig.facecolor"] == "#ffffff"
    assert mpl.rcParams["text.color"] == theme.COLORS["text"]
    assert mpl.rcParams["figure.figsize"] == [3.0, 2.0]
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # plain matplotlib: the theme's settings alone
    corner = plt.imread(io.BytesIO(buffer.getvalue()))[0, 0]
    assert tuple(np.round(corner * 255)) == (255, 255, 255, 255)


def test_every_context_and_style_sets_the_same_keys():
    """The theme owns one set of keys: a later call overwrites all an earlier one set."""
    keys = {frozenset(theme.rc_params(c, s)) for c in theme.CONTEXTS for s in theme.STYLES}
    assert len(keys) == 1
    with pytest.raises(ValueError, match="context"):
        theme.rc_params("huge")
    with pytest.raises(ValueError, match="style"):
        kv.set_theme(style="sepia")


def test_contexts_scale_the_text_not_the_figure(restored):
    """paper < notebook < talk < poster in every font size and line width; figure.figsize is
    never touched, so a larger context means larger text relative to the figure."""
    sizes = []
    for context in theme.CONTEXTS:
        kv.set_theme(context)
        sizes.append(
            (
                mpl.rcParams["font.size"],
                mpl.rcParams["xtick.labelsize"],
                mpl.rcParams["lines.linewidth"],
                tuple(mpl.rcParams["figure.figsize"]),
            )
        )
    for small, large in itertools.pairwise(sizes):
        assert all(a < b for a, b in zip(small[:3], large[:3], strict=True))
        assert small[3] == large[3] == tuple(mpl.rcParamsDefault["figure.figsize"])
    assert "figure.figsize" not in theme.rc_params("poster")


def test_the_accessors_follow_the_current_settings(restored):
    """theme.color / kernel_style / policy_style / behind_style pick the palette from the
    settings in force: set_theme's style, a kvmviz sheet or matplotlib's own dark sheet
    applied with plt.style.context, and back again when the context ends."""
    kv.set_theme(style="light")
    assert not theme.is_dark()
    assert theme.color("text") == theme.COLORS["text"]
    assert theme.kernel_style("v5.12") == theme.KERNEL_STYLES["v5.12"]
    assert theme.policy_style("qrwlock") == theme.POLICY_STYLES["qrwlock"]
    assert theme.behind_style("fault") == theme.BEHIND_STYLES["fault"]
    with plt.style.context(theme.style_sheet("dark", "paper")):
        assert theme.is_dark()
        assert theme.kernel_style("v5.12") == theme.DARK_KERNEL_STYLES["v5.12"]
        assert theme.color("background") == theme.DARK_BACKGROUND
    with plt.style.context("dark_background"):  # not ours: black page
        assert theme.is_dark()
        assert theme.color("note_face") == "#000000"
        assert theme.color("read") == theme.DARK_COLORS["read"]
    assert not theme.is_dark()
    kv.set_theme(style="dark")
    assert theme.is_dark()
    assert theme.behind_style("fault")["color"] == theme.DARK_COLORS["read"]
    assert theme.policy_style("qrwlock") == theme.DARK_POLICY_STYLES["qrwlock"]
    assert theme.kernel_style("v9.9") == {
        "color": theme.DARK_COLORS["read"],
        "linestyle": "-",
        "label": "v9.9",
    }
    with pytest.raises(KeyError, match="unknown colour"):
        theme.color("purple")


def test_the_palettes_have_the_same_names_and_kernels():
    """The dark palette is the light one's counterpart: the same names, kernels, policies and
    parts; kernels keep their line styles and labels."""
    assert set(theme.DARK_COLORS) == set(theme.COLORS)
    for light, dark in (
        (theme.KERNEL_STYLES, theme.DARK_KERNEL_STYLES),
        (theme.POLICY_STYLES, theme.DARK_POLICY_STYLES),
        (theme.BEHIND_STYLES, theme.DARK_BEHIND_STYLES),
    ):
        assert list(light) == list(dark)
        for key in light:
            assert {k: v for k, v in light[key].items() if k != "color"} == {
                k: v for k, v in dark[key].items() if k != "color"
            }


def test_every_line_colour_stands_out_on_its_page():
    """WCAG contrast >= 3 (the bar for graphics) of every kernel, policy and brownout-part
    colour and every ink of the dark palette against the dark page, so v5.12 no longer
    vanishes there; the kernel and policy lines against white too."""
    dark = [s["color"] for s in theme.DARK_KERNEL_STYLES.values()]
    dark += [s["color"] for s in theme.DARK_POLICY_STYLES.values()]
    dark += [s["color"] for s in theme.DARK_BEHIND_STYLES.values()]
    dark += [
        theme.DARK_COLORS[n]
        for n in ("read", "write", "wait", "memslot", "miss", "hit", "text", "muted")
    ]
    ratios = {c: theme.contrast(c, theme.DARK_BACKGROUND) for c in dark}
    assert min(ratios.values()) >= 3, ratios
    light = [s["color"] for s in theme.KERNEL_STYLES.values()]
    light += [s["color"] for s in theme.POLICY_STYLES.values()]
    assert min(theme.contrast(c, theme.BACKGROUND) for c in light) >= 3
    # v5.12's light-page colour is what vanished on a dark page: the test can fail.
    assert theme.contrast(theme.KERNEL_STYLES["v5.12"]["color"], theme.DARK_BACKGROUND) < 1.5
    assert theme.contrast("#000000", "#ffffff") == pytest.approx(21)


def test_kernel_colors_are_the_documented_way_to_recolour(restored):
    """set_theme(kernel_colors=...) recolours a kernel's lines in either style, leaves the
    other kernels and the module's dictionaries alone, and lasts until the next call."""
    before = copy.deepcopy(theme.KERNEL_STYLES)
    kv.set_theme(style="dark", kernel_colors={"v5.15": "#7b3294"})
    assert theme.kernel_style("v5.15")["color"] == "#7b3294"
    assert theme.kernel_style("v5.12") == theme.DARK_KERNEL_STYLES["v5.12"]
    runs = {
        k: scripted_run([0, 1, 2], [False, True, False], [3, 1, 1], "qrwlock")
        for k in ("v5.12", "v5.15")
    }
    ax = kv.plot.stall_cdf(runs)
    colours = {line.get_gid(): line.get_color() for line in ax.get_lines() if line.get_gid()}
    assert colours["cdf|v5.15"] == "#7b3294"
    assert colours["cdf|v5.12"] == theme.DARK_KERNEL_STYLES["v5.12"]["color"]
    assert theme.KERNEL_STYLES == before
    kv.set_theme()
    assert theme.kernel_style("v5.15") == theme.KERNEL_STYLES["v5.15"]
    with pytest.raises(ValueError, match="not colours"):
        kv.set_theme(kernel_colors={"v5.12": "not-a-colour"})


def test_the_style_sheets_are_set_themes_settings(restored):
    """Each packaged sheet is the text rc_params makes (regenerate with
    kvmviz.theme.write_style_sheets()), and applying it with plt.style.context gives the
    rcParams set_theme gives, key by key."""
    for style in theme.STYLES:
        for context in theme.CONTEXTS:
            path = Path(theme.style_sheet(style, context))
            assert path.read_text(encoding="utf-8") == theme.sheet_text(style, context), path
            kv.set_theme(context, style=style)
            want = {k: mpl.rcParams[k] for k in theme.rc_params(context, style)}
            mpl.rcdefaults()
            with plt.style.context(str(path)):
                assert {k: mpl.rcParams[k] for k in want} == want
    assert sorted(p.name for p in theme.STYLE_DIR.glob("*.mplstyle")) == sorted(
        Path(theme.style_sheet(s, c)).name for s in theme.STYLES for c in theme.CONTEXTS
    )
    with plt.style.context("kvmviz.styles.kvmviz-dark"):  # by name, as a package resource
        assert mpl.rcParams["axes.facecolor"] == theme.DARK_BACKGROUND


@pytest.mark.parametrize(
    "name",
    ["brownout", "stall-cdf", "kernel-comparison", "stall-split", "memslots-q35",
     "lock-timeline-8-vcpus"],
)  # fmt: skip
def test_a_dark_figure_hides_nothing(restored, name):
    """A gallery figure drawn dark: every visible line and text has contrast >= 2.5 against
    the page it sits on (the dark page, or a note's box, which is the page's colour too): no
    #333333 line, no #222222 text, no white box on the dark page."""
    kv.set_theme("paper", style="dark")
    fig = kv.gallery.render(name)
    fig.canvas.draw()
    page = theme.DARK_BACKGROUND
    faint = []
    for artist in fig.findobj(lambda a: isinstance(a, (Line2D, Text)) and a.get_visible()):
        if isinstance(artist, Text):
            if not artist.get_text().strip():
                continue
            box = artist.get_bbox_patch()
            ground = box.get_facecolor() if box is not None else page
            if box is not None:
                assert theme.contrast(box.get_facecolor(), page) < 1.1, artist.get_text()
            ink = artist.get_color()
        else:
            if not len(artist.get_xdata()) or artist.get_linestyle() in ("None", "none", " "):
                if artist.get_marker() in ("None", "none", None, ""):
                    continue
            ground = page
            ink = artist.get_color()
        if theme.contrast(ink, ground) < 2.5:
            faint.append(
                (
                    type(artist).__name__,
                    artist.get_gid(),
                    ink,
                    getattr(artist, "get_text", lambda: "")(),
                )
            )
    assert not faint


def test_themed_styles_are_looked_up_when_read(restored):
    """A Themed style kept in a module constant gives the colours of the page in force when
    it is unpacked, and passes everything else through."""
    style = theme.Themed(facecolor="hit_face", edgecolor="#ff0000", linewidth=0.5, hatch="//")
    kv.set_theme(style="light")
    assert dict(style) == {
        "facecolor": theme.COLORS["hit_face"],
        "edgecolor": "#ff0000",
        "linewidth": 0.5,
        "hatch": "//",
    }
    kv.set_theme(style="dark")
    assert {**style}["facecolor"] == theme.DARK_COLORS["hit_face"]
    assert len(style) == 4 and "Themed(" in repr(style)
