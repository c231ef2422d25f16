"""Animation benchmark: how many frames a second the live player can render.

The player (:func:`kvmviz.animate.player`) calls ``Animation.png(i)`` for each frame it has
not shown yet: restore the static background, update and draw the moving artists (Agg
blitting), then encode a PNG (Pillow, ``compress_level=1``). This times exactly that call, in
one process, for the two standard animations at their default size:

* the first frame, which also draws the static background once (and solves the layout);
* a cold pass over every other frame, right after building: each label and caption is drawn
  for the first time (the sprite caches start empty). This is what a learner pressing Play
  the first time gets, and the number judged against the goal (>= 15 frames a second);
* a warm pass, the same frames again: looks seen before are restored from pixels;
* the warm pass without the PNG encoding (the blit alone), to show where the time goes.

Not measured: sending the PNG to the browser (a comm message of ~20-60 KB a frame) and the
browser's decoding; the player keeps every rendered frame, so a second loop renders nothing.

    python benchmarks/animate.py            # both animations, every frame
    python benchmarks/animate.py --frames 40

It is a report, not a test: the exit status is 0 whenever it ran, unless ``--check`` is given
and the goal fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing kvmviz
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402
import PIL  # noqa: E402

from kvmviz import animate  # noqa: E402

GOAL_FPS = 15.0


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:6.1f} fps  ({1000 * seconds / n:5.1f} ms/frame)"


def measure(name: str, build, frames: int | None) -> float:
    """Print the timings of one animation; return the cold pass's frames per second."""
    started = time.perf_counter()
    animation = build()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=None, help="frames to time (default all)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {GOAL_FPS:g} fps")
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 2:
        parser.error("--frames must be at least 2")

    print(
        f"python {platform.python_version()}, matplotlib {matplotlib.__version__}, "
        f"Pillow {PIL.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    results = {}
    for name in ("queue-v5.12-vs-v5.15", "memslot-arrivals-v5.13"):

        def build(name=name):
            return animate.standard_animations(seed=0, names=[name])[name]

        results[name] = measure(name, build, args.frames)
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
