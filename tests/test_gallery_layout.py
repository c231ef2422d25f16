"""Labels never collide: every gallery figure, in every context, style and offered width.

Each figure of :data:`kvmviz.gallery.FIGURES` is rendered as a blog author would render it
(``kv.set_theme(context, style=...)`` then ``kv.gallery.render(name, context=..., width=...)``)
and drawn on an Agg canvas; every piece of text drawn (tick labels, titles, axis labels,
notes, the names beside the lines, the memslot maps' labels and counts, legend entries, the
caption) is recorded with its box on screen at the moment it is drawn. No two boxes may
overlap by more than :data:`TOLERANCE_PX` in both directions (touching is allowed), and none
may leave the figure.

The runs are shared by every render of the module (``gallery._shared_runs``): a figure in
eight sizes costs one set of simulations. The style cannot move any text (the dark style
changes colours only): that is asserted for one figure per context, and the other figures
are drawn in the light style alone. A serif font (wider letters) is tried at the narrowest
width and at the 7 in where it used to make tick labels overlap.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import matplotlib as mpl
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

import kvmviz as kv
from kvmviz import gallery, theme

TOLERANCE_PX = 1.0
WIDTHS = list(gallery.WIDTHS)
NARROWEST = min(gallery.WIDTHS, key=gallery.WIDTHS.get)
# Drawn in both styles, in every context: notes, the names beside lines, a legend, ticks.
STYLE_PROBE = "before-after"


@pytest.fixture(scope="module", autouse=True)
def shared_runs():
    """One cache of runs, streams and sweeps for every render of this module."""
    with gallery._shared_runs():
        yield


@contextmanager
def _recording():
    """Every Text drawn meanwhile, visible and not blank, with its box on screen then."""
    drawn: list[tuple[str, object]] = []
    original = Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append((self.get_text(), self.get_window_extent(renderer)))
        return original(self, renderer)

    Text.draw = draw
    try:
        yield drawn
    finally:
        Text.draw = original


def _drawn_texts(fig: Figure) -> list[tuple[str, object]]:
    FigureCanvasAgg(fig)
    with _recording() as drawn:
        fig.canvas.draw()
    return drawn


def _problems(fig: Figure, drawn) -> list[str]:
    """Every text leaving the figure, every pair of texts overlapping, in words."""
    width, height = fig.bbox.width, fig.bbox.height
    found = []
    for text, box in drawn:
        if (
            box.x0 < -TOLERANCE_PX
            or box.y0 < -TOLERANCE_PX
            or box.x1 > width + TOLERANCE_PX
            or box.y1 > height + TOLERANCE_PX
        ):
            found.append(f"{text!r} leaves the figure: {box.extents.round()}")
    for (a, box_a), (b, box_b) in itertools.combinations(drawn, 2):
        across = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        up = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if across > TOLERANCE_PX and up > TOLERANCE_PX:
            found.append(f"{a!r} overlaps {b!r} by {across:.0f} x {up:.0f} px")
    return found


def _render(name: str, context: str, width, *, style: str = "light", rc=None):
    """The figure as an author renders it, and the texts drawn (drawn under the same rc)."""
    with mpl.rc_context():
        kv.set_theme(context, style=style)
        mpl.rcParams.update(rc or {})
        fig = gallery.render(name, context=context, width=width)
        return fig, _drawn_texts(fig)


def _boxes(drawn) -> list[tuple[str, tuple]]:
    return [(text, tuple(box.extents.round(2))) for text, box in drawn]


# --------------------------------------------------------------------------------------------
# The detector itself.
# --------------------------------------------------------------------------------------------
def test_the_detector_sees_every_kind_of_text_and_every_collision():
    """Tick labels, axis labels, titles, notes, legend entries and the caption are all
    recorded; two notes on top of each other and a note off the figure are reported;
    blank texts are skipped."""
    fig = Figure(figsize=(4, 3))
    ax = fig.add_axes((0.2, 0.2, 0.5, 0.6))
    ax.plot([0, 1], [0, 1], label="a line")
    ax.legend()
    ax.set(xlabel="x label", ylabel="y label", title="a title")
    ax.text(0.5, 0.5, "note one")
    ax.text(0.5, 0.5, "note two")
    ax.text(3.0, 0.5, "far away")
    ax.text(0.2, 0.2, "   ")
    fig.suptitle("the caption")
    drawn = _drawn_texts(fig)
    texts = [text for text, _box in drawn]
    for kind in ("x label", "y label", "a title", "a line", "the caption", "note one", "0.0"):
        assert kind in texts
    assert "   " not in texts
    found = _problems(fig, drawn)
    assert any("'note one' overlaps 'note two'" in p for p in found)
    assert any("'far away' leaves the figure" in p for p in found)
    assert not any("caption" in p or "a title" in p for p in found)


# --------------------------------------------------------------------------------------------
# Every figure, context and width.
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("context", theme.CONTEXTS)
def test_the_style_moves_no_text(context):
    """Light and dark draw every text of a figure in the same place: the style changes
    colours only, so the light renders below stand for both."""
    _fig, light = _render(STYLE_PROBE, context, NARROWEST)
    _fig, dark = _render(STYLE_PROBE, context, NARROWEST, style="dark")
    assert _boxes(dark) == _boxes(light)
    assert len(light) > 20


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("context", theme.CONTEXTS)
@pytest.mark.parametrize("name", list(gallery.FIGURES))
def test_no_text_overlaps_another_or_leaves_the_figure(name, context, width):
    """The figure is as wide as asked, and no two of its texts overlap, nor does one leave
    it."""
    fig, drawn = _render(name, context, width)
    assert fig.get_figwidth() == pytest.approx(gallery.WIDTHS[width])
    assert drawn
    assert _problems(fig, drawn) == []


SERIF = [(name, NARROWEST) for name in gallery.FIGURES] + [
    # The 7 in of the issue, for the figures whose tick labels are numbers.
    (name, 7.0)
    for name in (
        "stall-cdf",
        "kernel-comparison",
        "lock-timeline-8-vcpus",
        "lock-timeline-416-vcpus",
    )
]


@pytest.mark.parametrize(("name", "width"), SERIF, ids=[f"{n}-{w}" for n, w in SERIF])
def test_a_serif_font_collides_nowhere_either(name, width):
    """With a serif font (DejaVu Serif, wider than the theme's sans), at the narrowest width
    and at 7 in, paper context: no overlap either."""
    fig, drawn = _render(name, "paper", width, rc={"font.family": "serif"})
    assert fig.get_figwidth() == pytest.approx(gallery.WIDTHS.get(width, width))
    assert drawn and _problems(fig, drawn) == []
