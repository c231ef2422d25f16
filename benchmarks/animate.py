"""Animation benchmark: the live player's frame rate, and the exports against matplotlib's writers.

The two standard animations (:func:`kvmviz.gallery.standard_animations`, 120 frames each) at
their default size, in one process.

**(a) The player** (:func:`kvmviz.widgets.player`) calls ``Animation.png(i)`` for each frame it
has not shown yet: restore the static background, update and draw the moving artists
(:class:`kvmviz.animate.Blitter`), then encode a PNG (Pillow, ``compress_level=1``). Timed:

* the first frame, which also draws the static background once (and solves the layout);
* a cold pass over every other frame, right after building: each label and caption is drawn
  for the first time (the sprite caches start empty). This is what a learner pressing Play
  the first time gets, and the number judged against the goal (>= 15 frames a second);
* a warm pass, the same frames again: looks seen before are restored from pixels;
* the warm pass without the PNG encoding (the blit alone), to show where the time goes.

Not measured: sending the PNG to the browser (a comm message of ~20-60 KB a frame) and the
browser's decoding; the player keeps every rendered frame, so a second loop renders nothing.

**(b) The exports**: :func:`kvmviz.animate.to_html` and :func:`kvmviz.animate.to_gif` against
the reference, matplotlib's own writers on the same figure and frames:
``matplotlib.animation.HTMLWriter(embed_frames=True)`` (what ``Animation.to_jshtml`` uses) and
``PillowWriter``, through ``FuncAnimation.save`` at the figure's dpi. For each: bytes, seconds,
the ratios matplotlib/kvmviz, whether the file names any URL (self-containment: matplotlib's
HTML loads Font Awesome from a CDN for its button icons) and whether two exports of the same
animation are byte-identical (matplotlib's HTML carries a random ``uuid4`` id).

Measured on 2026-12-04 (python 3.11.7, matplotlib 3.11.2, Pillow 13.0.0, x86_64, 2 CPUs, load
average 0.5-2; 120 frames each):

==========================  =====================  =====================
bytes, seconds              queue-v5.12-vs-v5.15   memslot-arrivals-v5.13
==========================  =====================  =====================
HTML, kvmviz                3,284,959 B,  2.9 s    3,142,623 B,  1.7 s
HTML, matplotlib            9,537,183 B, 27.6 s    9,104,979 B, 18.9 s
GIF, kvmviz                   381,087 B,  3.1 s      392,385 B,  1.3 s
GIF, matplotlib               924,366 B, 27.4 s    1,074,643 B, 22.3 s
==========================  =====================  =====================

matplotlib/kvmviz: HTML 2.90x the bytes and 9.6-11x the time, GIF 2.4-2.7x the bytes and
8.8-17x the time. matplotlib's HTML also links Font Awesome on maxcdn.bootstrapcdn.com (not
self-contained: offline its nine buttons are blank) and differs between two exports of the
same animation (a ``uuid4`` id); its GIFs are stable. So the exports stay kvmviz's: blitted
frames on one 256-colour palette shared by all frames, where matplotlib's writers redraw the
whole figure per frame and store full-colour frames. ``--frames`` times fewer frames (the
ratios barely move: 20 frames gave 2.9x / 6.9-8.9x for HTML, 1.6-2.1x / 8-11x for GIF).

    python benchmarks/animate.py                 # both animations, every frame (about 5 min)
    python benchmarks/animate.py --frames 40     # quicker
    python benchmarks/animate.py --no-reference  # the player and kvmviz's exports only

It is a report, not a test: the exit status is 0 whenever it ran, unless ``--check`` is given
and the player's goal fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing kvmviz
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib as mpl  # noqa: E402
import PIL  # noqa: E402
from matplotlib.animation import FuncAnimation, HTMLWriter, PillowWriter  # noqa: E402

from kvmviz import animate, gallery  # noqa: E402

GOAL_FPS = 15.0
NAMES = ("queue-v5.12-vs-v5.15", "memslot-arrivals-v5.13")
_URL = re.compile(r"(?:https?:)?//[\w.-]+\.\w[^\s\"'<>)]*")


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:6.1f} fps  ({1000 * seconds / n:5.1f} ms/frame)"


def _build(name: str, frames: int | None) -> animate.Animation:
    animation = gallery.standard_animations(seed=0, names=[name])[name]
    if frames is not None:
        animation.n_frames = min(frames, animation.n_frames)  # the first frames only
    return animation


def measure_player(name: str, frames: int | None) -> float:
    """Print the timings of one animation's frames; return the cold pass's frames per second."""
    started = time.perf_counter()
    animation = _build(name, None)
    built = time.perf_counter() - started
    n = len(animation) if frames is None else min(frames, len(animation))
    width, height = animation.canvas.get_width_height()
    print(f"\n{name}: {len(animation)} frames, {width}x{height} px; timing frames 0..{n - 1}")
    print(f"  build (simulate + frame states + figure)   {1000 * built:7.1f} ms")
    started = time.perf_counter()
    size = len(animation.png(0))
    first = time.perf_counter() - started
    print(f"  first frame (+ static background, layout) {1000 * first:7.1f} ms")
    passes = {}
    for label in ("cold", "warm"):
        started = time.perf_counter()
        for i in range(1, n):
            size += len(animation.png(i))
        passes[label] = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(1, n):
        animation.draw(i)
    blit = time.perf_counter() - started
    m = n - 1
    print(f"  cold pass, png(i)      {_rate(m, passes['cold'])}")
    print(f"  warm pass, png(i)      {_rate(m, passes['warm'])}")
    print(f"  warm pass, blit only   {_rate(m, blit)}")
    print(f"  mean PNG size          {size / (n + m) / 1024:6.1f} KiB")
    return m / passes["cold"]


def _kvmviz_export(kind: str, animation, path: Path) -> None:
    if kind == "html":
        animate.to_html(animation, path, force=True)
    else:
        animate.to_gif(animation, path, force=True)


def _matplotlib_export(kind: str, animation, path: Path) -> None:
    """The same frames through matplotlib's writer: each frame's state set as
    ``Animation.draw`` sets it (without the blit), then the writer's ``savefig``."""
    animation.draw(0)  # the layout solved and the progress bar added, as for kvmviz

    def frame(i):
        animation._update(i)
        animation._progress.set_xdata([0, (i + 1) / animation.n_frames])
        return []

    movie = FuncAnimation(
        animation.figure, frame, frames=animation.n_frames, repeat=True, cache_frame_data=False
    )
    if kind == "html":  # a limit above any file here: matplotlib drops frames past 20 MB
        writer = HTMLWriter(fps=animation.fps, embed_frames=True, embed_limit=500)
    else:
        writer = PillowWriter(fps=10)
    with mpl.rc_context(animation._rc):
        movie.save(path, writer=writer, dpi=animation.figure.dpi)


def measure_exports(name: str, frames: int | None, reference: bool, out: Path) -> dict:
    """Export one animation both ways (fresh animations each time); print and return
    {(kind, writer): (bytes, seconds, urls, stable)}."""
    writers = {"kvmviz": _kvmviz_export}
    if reference:
        writers["matplotlib"] = _matplotlib_export
    results = {}
    for kind in ("html", "gif"):
        for label, export in writers.items():
            paths = [out / f"{name}.{label}.{n}.{kind}" for n in range(2)]
            seconds = []
            for path in paths:
                animation = _build(name, frames)
                started = time.perf_counter()
                export(kind, animation, path)
                seconds.append(time.perf_counter() - started)
            data = [p.read_bytes() for p in paths]
            urls = sorted(set(_URL.findall(data[0].decode("latin-1")))) if kind == "html" else []
            results[kind, label] = (len(data[0]), min(seconds), urls, data[0] == data[1])
    print(f"\n{name}: exports of {len(_build(name, frames))} frames")
    print(f"  {'':16s}{'bytes':>12s} {'seconds':>8s}  {'same bytes twice':16s} URLs")
    for (kind, label), (size, seconds, urls, stable) in results.items():
        print(
            f"  {kind} {label:11s}{size:12,d} {seconds:8.2f}  {'yes' if stable else 'NO':16s} "
            f"{', '.join(urls) or 'none'}"
        )
    if reference:
        for kind in ("html", "gif"):
            (b0, s0, *_), (b1, s1, *_) = results[kind, "kvmviz"], results[kind, "matplotlib"]
            print(f"  ratio matplotlib/kvmviz, {kind}: {b1 / b0:.2f}x bytes, {s1 / s0:.2f}x time")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=None, help="frames to time (default all)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {GOAL_FPS:g} fps")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip matplotlib's writers (the slow part)"
    )
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 2:
        parser.error("--frames must be at least 2")

    print(
        f"python {platform.python_version()}, matplotlib {matplotlib.__version__}, "
        f"Pillow {PIL.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print("\n(a) the live player")
    results = {name: measure_player(name, args.frames) for name in NAMES}
    print("\n(b) the exports, kvmviz against matplotlib's HTMLWriter / PillowWriter")
    with tempfile.TemporaryDirectory() as tmp:
        for name in NAMES:
            measure_exports(name, args.frames, not args.no_reference, Path(tmp))
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"goal: the live player renders >= {GOAL_FPS:g} frames a second (cold pass)")
    ok = True
    for label, fps in results.items():
        verdict = "ok" if fps >= GOAL_FPS else "BELOW GOAL"
        ok &= fps >= GOAL_FPS
        print(f"  {label:24s} {fps:6.1f} fps  {verdict}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
