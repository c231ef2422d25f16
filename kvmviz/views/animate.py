"""Animations: the ``mmu_lock`` queue, and notifier ranges landing on the memslot map.

Both are drawn from a run's tidy tables and never simulate:

* :func:`queue_frames` / :func:`draw_queue` / :func:`queue_animation`: who is inside
  ``mmu_lock`` and who waits for it (FIFO), and behind which writer each waiting fault queued
  (``run.faults["blocked_by"]``), frame by frame; one panel per kernel on the same workload,
  so the queues of v5.12 and v5.15 compare directly. :func:`story_window` chooses, by a rule,
  the window where a spurious writer holds readers back on v5.12 while the same notification
  passes by without the lock on v5.15.
* :func:`memslot_animation`: notifier ranges arriving one by one on
  :func:`kvmviz.plot.memslot_map`; a hit takes ``mmu_lock`` for write, a miss passes by without
  it where the kernel allows (the ``locked`` column of ``Run.notifiers``).

An :class:`Animation` is one fixed figure whose static part is drawn once; each frame restores
that background and draws only the moving artists (:class:`Blitter`, the one Agg blitting of the
package: the dashboard of :mod:`kvmviz.widgets` uses it too). Play one live with
:func:`kvmviz.widgets.player`, or export it with :func:`to_html` (one self-contained file) or
:func:`to_gif`; :func:`kvmviz.gallery.render_animations` writes the standard ones.

This module is the flat public face of small modules, one idea each:
``stats/lock_state.py`` (:class:`QueueState`, :func:`queue_frames`), ``stats/story.py``
(:func:`story_window`), ``views/blit.py`` (:class:`Blitter`, :class:`Animation`,
:func:`set_spans`), ``views/queue_animation.py``, ``views/memslot_animation.py`` and
``views/animation_export.py`` (:func:`to_html`, :func:`to_gif`).
"""

from __future__ import annotations

from ..stats.lock_state import QueueState, queue_frames
from ..stats.story import QUEUE_WINDOW_US, Story, story_window
from .animation_export import to_gif, to_html
from .blit import Animation, Blitter, set_spans
from .memslot_animation import memslot_animation
from .queue_animation import draw_queue, queue_animation

__all__ = [
    "QUEUE_WINDOW_US",
    "Animation",
    "Blitter",
    "QueueState",
    "Story",
    "draw_queue",
    "memslot_animation",
    "queue_animation",
    "queue_frames",
    "set_spans",
    "story_window",
    "to_gif",
    "to_html",
]
