"""Static figures, each ``f(data, *, ax=None) -> Axes``, drawn from a run's tidy tables.

None of them simulates: pass :class:`~kvmviz.Run` objects (or a ``{kernel: Run}`` mapping)
made elsewhere, or the tables of :mod:`kvmviz.metrics` and :mod:`kvmviz.experiments`. The lock
and retry timelines live in :mod:`kvmviz.timelines`. Call :func:`kvmviz.set_theme` first for
the house look; :func:`save` writes a figure as SVG and PNG, atomically.

This module is the flat public face of small modules in ``kvmviz/views/``, one kind of figure
each: ``stall_figures.py`` (:func:`stall_cdf`, :func:`brownout_curve`, :func:`stall_split`,
:func:`stall_by_kernel`, and :func:`update_stalls` / :func:`restyle_stalls` for a live view),
``stall_data.py`` (:func:`brownout_points`, :func:`precompute`), ``kernel_bars.py``,
``memslot_maps.py`` (:func:`memslot_map`, :func:`gfn_map`, :func:`map_parts`),
``span_bars.py`` (:class:`SpanBars`), ``tornado.py``, ``sweeps.py`` (:func:`heatmap`,
:func:`heatmaps`, :func:`curves`) and ``save.py``.
"""

from __future__ import annotations

from .kernel_bars import kernel_bars
from .memslot_maps import RANGE_STYLE, MapParts, gfn_map, map_parts, memslot_map
from .save import DENSE_VERTICES, FIGURE_FORMATS, save
from .span_bars import MIN_SPAN_PT, SpanBars
from .stall_data import brownout_points, precompute
from .stall_figures import (
    brownout_curve,
    live_artists,
    restyle_stalls,
    stall_by_kernel,
    stall_cdf,
    stall_split,
    update_stalls,
)
from .sweep_figures import curves, heatmap, heatmaps
from .tornado import tornado, tornado_grid

__all__ = [
    "DENSE_VERTICES",
    "FIGURE_FORMATS",
    "FORMATS",
    "MIN_SPAN_PT",
    "RANGE_STYLE",
    "MapParts",
    "SpanBars",
    "brownout_curve",
    "brownout_points",
    "curves",
    "gfn_map",
    "heatmap",
    "heatmaps",
    "kernel_bars",
    "live_artists",
    "map_parts",
    "memslot_map",
    "precompute",
    "restyle",
    "restyle_stalls",
    "save",
    "stall_by_kernel",
    "stall_cdf",
    "stall_split",
    "tornado",
    "tornado_grid",
    "update",
    "update_stalls",
]

FORMATS = FIGURE_FORMATS
"""The older name of :data:`FIGURE_FORMATS` (the file formats :func:`save` writes)."""

update = update_stalls
"""The older name of :func:`update_stalls`: it works on the stall figures' axes only."""

restyle = restyle_stalls
"""The older name of :func:`restyle_stalls`: it works on the stall figures' axes only."""
