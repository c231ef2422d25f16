"""The player of an :class:`~kvmviz.animate.Animation`: a slider, play and pause, frames
rendered ahead while the page is idle."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable

from ..views.animate import Animation

__all__ = ["player", "run_ahead"]

PAUSE_S = 0.02  # between two tasks run ahead: the kernel's own messages go first (run_ahead)


def player(animation: Animation):
    """An ipywidgets player: Play and a frame slider (linked in the browser) over an image.

    In a notebook, every frame is rendered ahead and kept, one frame at a time on the kernel's
    event loop (:func:`run_ahead`), so playback then only sends bytes to the browser. Display
    the returned box as a cell's last line. Outside a running event loop (a script, a test)
    a frame is rendered when it is first shown.

    All drawing happens on the thread that runs the kernel's event loop, the one that also
    runs the cells and the slider's callbacks: the animation's figure is never drawn from two
    threads at once (matplotlib is not thread-safe), however the learner steps, plays or
    exports it meanwhile.

    Parameters
    ----------
    animation : kvmviz.animate.Animation

    Returns
    -------
    ipywidgets.VBox
        Its ``.children``: an HBox of (Play, IntSlider), then the Image; CSS class
        ``kvmviz-player``.

    Examples
    --------
    >>> kv.widgets.player(kv.animate.queue_animation(runs))  # doctest: +SKIP
    """
    import ipywidgets as w

    last = len(animation) - 1
    play = w.Play(
        value=0,
        min=0,
        max=last,
        step=1,
        interval=max(1, round(1000 / animation.fps)),
        description="play",
    )
    slider = w.IntSlider(value=0, min=0, max=last, description="frame", readout=True)
    w.jslink((play, "value"), (slider, "value"))
    image = w.Image(value=animation.png(0), format="png")
    image.layout.max_width = "100%"
    rendered = {0: image.value}

    def frame(i: int) -> bytes:
        if i not in rendered:
            rendered[i] = animation.png(i)
        return rendered[i]

    def show(change) -> None:
        image.value = frame(int(change["new"]))

    slider.observe(show, names="value")
    box = w.VBox([w.HBox([play, slider]), image])
    box.add_class("kvmviz-player")
    _render_ahead(frame, len(animation), box)
    return box


def run_ahead(tasks: list[Callable[[], None]], owner, pause_s: float = PAUSE_S) -> bool:
    """Call each of ``tasks`` on the running event loop, ``pause_s`` seconds apart, while
    ``owner`` (a widget) lives; nothing without a running loop (a script, a test). Returns
    whether there was one.

    The pause, not one turn of the loop, is what lets a message in: ipykernel serves a
    message over several turns of its loop (each ``await`` is one), so tasks queued turn
    after turn would each run inside that message's handling, and the kernel would answer
    only once they are all done (a Voila page connecting to a dashboard that runs ahead
    waited all of its 2 s). With the pause, a message waits one task at most."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    alive = weakref.ref(owner)

    def step(i: int) -> None:
        widget = alive()
        if i >= len(tasks) or widget is None or getattr(widget, "comm", True) is None:
            return
        tasks[i]()
        loop.call_later(pause_s, step, i + 1)

    loop.call_later(pause_s, step, 0)
    return True


def _render_ahead(frame: Callable[[int], bytes], n_frames: int, owner) -> bool:
    """Call ``frame(1)`` .. ``frame(n_frames - 1)`` on the running event loop, one at a time
    (:func:`run_ahead`), so the messages of the widgets (a slider moved) are served in
    between. Stops early when ``owner`` (the player) is garbage-collected or its widget
    closed. Returns whether an event loop was there to do it (ipykernel runs one on the main
    thread; a plain script has none).

    No thread: the frames are drawn on the loop's thread, the one that runs the cells and the
    slider's callbacks, so a frame drawn ahead never races the caller's own draw."""
    return run_ahead([functools.partial(frame, i) for i in range(1, n_frames)], owner)
