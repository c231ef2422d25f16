"""ipywidgets front ends: the kernel toggle dashboard over cached simulations, the zoomable
lock timeline, the player of an :class:`~kvmviz.animate.Animation`, and the 2024 freeze's
kernel x preemption toggle.

The views draw (:mod:`kvmviz.plot`, :mod:`kvmviz.timelines`, :mod:`kvmviz.animate`); this
module simulates (through :func:`cached_simulate`), wires the controls and shows the pictures.
The dashboard, the timeline and the animations redraw only what moves
(:class:`kvmviz.animate.Blitter`).
"""

from .animation_player import player
from .controls import cached_simulate
from .dashboard import ToggleDashboard, toggle_dashboard
from .explorer import TimelineExplorer, timeline_explorer
from .freeze_toggle import FreezeToggle, freeze_toggle

__all__ = [
    "FreezeToggle",
    "TimelineExplorer",
    "ToggleDashboard",
    "cached_simulate",
    "freeze_toggle",
    "player",
    "timeline_explorer",
    "toggle_dashboard",
]
