"""A figure written to files, atomically and reproducibly (:func:`save`): SVG, PNG, PDF
rendered in memory, then renamed into place; dense artists embedded as images in the vector
formats, text kept as text.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .._shared._checks import strict_booleans
from .._shared._files import check_free, write_atomic
from . import theme

__all__ = ["DENSE_VERTICES", "FIGURE_FORMATS", "save"]

FIGURE_FORMATS = ("svg", "png", "pdf")
"""The file formats :func:`save` writes."""

DENSE_VERTICES = 1_000
"""An artist with more vertices than this (a lane of a long timeline, thousands of notifier
ranges, a step line of a long run) is embedded in SVG and PDF files by :func:`save` as an
image at ``savefig.dpi``; so is one hatched with dots (the waits' ``"..."``: matplotlib writes
every dot of such a hatch as a curve, about 150 KB of SVG per colour). Everything else, text
above all, stays vector."""


@strict_booleans
def save(
    fig, path, *, formats=("svg", "png"), force: bool = False, transparent: bool = False
) -> list[Path]:
    """Write ``fig`` as ``path`` + each format, atomically and reproducibly.

    Every format is rendered in memory first, then written to a temporary file next to its
    target and renamed over it, so a failure (a bad format, a full disk) leaves no partial or
    half-written file behind. SVG and PDF carry no date, so the same figure gives the same
    bytes (with :func:`kvmviz.set_theme`, which fixes ``svg.hashsalt``).

    Under :func:`kvmviz.set_theme` (or its style sheets) SVG text stays text (``<text>``
    elements in DejaVu Sans, which a blog's reader can select, search and translate). In SVG
    and PDF, dense artists (more than :data:`DENSE_VERTICES` vertices: the lanes of a long
    timeline, thousands of notifier ranges) are embedded as images at ``savefig.dpi`` while
    the rest stays vector, so that the files stay small; PNG is drawn as it always is.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Destination without suffix (a suffix is replaced).
    formats : sequence of {"svg", "png", "pdf"}
    force : bool
        Overwrite existing files; otherwise, if any target exists, raise ``FileExistsError``
        before writing anything.
    transparent : bool
        Leave the page out (the figure's and the axes' backgrounds), for a page of one's own
        colour. By default the figure's background (white in the light style, near black in
        the dark one; :data:`kvmviz.theme.BACKGROUND` if the figure has none) is baked in,
        whatever ``savefig.facecolor`` says. The boxes behind notes stay opaque either way.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {FIGURE_FORMATS}, got {formats!r}")
    base = Path(path)
    targets = [base.with_suffix("." + f) for f in formats]
    check_free(targets, force=force)
    rendered = {}
    # Always in the order of FIGURE_FORMATS, SVG first: a figure already drawn by Agg lays its
    # text out a hair differently, so the SVG's bytes would otherwise depend on the formats asked
    # for.
    for fmt in sorted(set(formats), key=FIGURE_FORMATS.index):
        buffer = io.BytesIO()
        metadata = (
            {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else {})
        )
        with _rasterized(fig, fmt in ("svg", "pdf")):
            fig.savefig(buffer, format=fmt, metadata=metadata, **_background(fig, transparent))
        rendered[fmt] = buffer.getvalue()
    write_atomic({t: rendered[fmt] for t, fmt in zip(targets, formats, strict=True)}, force=force)
    return targets


def _vertex_count(artist) -> int:
    """How many points an artist draws: a line's, a collection's paths' (or offsets')."""
    from matplotlib.collections import Collection

    if isinstance(artist, Line2D):
        return len(artist.get_xdata(orig=False))
    if isinstance(artist, Collection):
        paths = sum(len(path.vertices) for path in artist.get_paths())
        return max(paths, len(artist.get_offsets()))
    return 0


def _dense_artists(fig) -> list:
    """The visible artists of ``fig`` not rasterised yet that are costly as vectors: lines and
    collections with more than :data:`DENSE_VERTICES` vertices, and any hatched with dots."""
    from matplotlib.collections import Collection

    def dense(artist) -> bool:
        if not isinstance(artist, (Line2D, Collection, Patch)):
            return False
        if not artist.get_visible() or artist.get_rasterized():
            return False
        dotted = not isinstance(artist, Line2D) and any(
            dot in (artist.get_hatch() or "") for dot in ".oO*"
        )
        return dotted or _vertex_count(artist) > DENSE_VERTICES

    return fig.findobj(dense)


@contextlib.contextmanager
def _rasterized(fig, vector: bool):
    """Rasterise :func:`_dense_artists` while a vector file is written, then restore them.

    An artist inside a legend (an offset box) is drawn in the vector renderer's 72-dpi
    pixels even while matplotlib rasterises it at ``savefig.dpi`` (matplotlib 3.11), which
    would shrink it towards the corner; its transform is scaled up by the ratio meanwhile."""
    from matplotlib.offsetbox import DrawingArea
    from matplotlib.transforms import Affine2D

    dense = _dense_artists(fig) if vector else []
    boxed = {id(a) for box in fig.findobj(DrawingArea) for a in box.get_children()}
    dpi = plt.rcParams["savefig.dpi"]
    scale = Affine2D().scale((fig.dpi if dpi == "figure" else float(dpi)) / 72)
    moved = {id(a): Artist.get_transform(a) for a in dense if id(a) in boxed}
    try:
        for artist in dense:
            with warnings.catch_warnings():
                # SpanBars.draw is not marked as rasterisable, but the PolyCollection.draw it
                # calls is: the bars are rasterised, their "×n" labels stay text.
                warnings.filterwarnings("ignore", "Rasterization of", UserWarning)
                artist.set_rasterized(True)
            if id(artist) in moved:
                artist.set_transform(moved[id(artist)] + scale)
        yield dense
    finally:
        for artist in dense:
            artist.set_rasterized(False)
            if id(artist) in moved:
                artist.set_transform(moved[id(artist)])


def _background(fig, transparent: bool) -> dict:
    """The savefig arguments that bake the figure's page in, or leave every page out."""
    if transparent:
        return {"transparent": True}
    face = fig.get_facecolor()
    if face[3] == 0:  # a figure without a page: the light style's
        face = theme.BACKGROUND
    return {"transparent": False, "facecolor": face, "edgecolor": face}
