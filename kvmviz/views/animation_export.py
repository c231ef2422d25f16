"""An :class:`~kvmviz.animate.Animation` written to one file: a self-contained HTML player
(:func:`to_html`) or a looping GIF (:func:`to_gif`), every frame on one 256-colour palette.

The exports are written here, not by matplotlib's ``HTMLWriter`` / ``to_jshtml`` and
``PillowWriter``: measured on the two standard animations (``benchmarks/animate.py``), those
redraw the whole figure for every frame and store full-colour frames, so their files are 2.4 to
2.9 times larger and take 9 to 17 times longer to write; and matplotlib's HTML player loads its
icons from a CDN (offline, its buttons are blank) and carries a random id (two exports of one
animation differ).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import PIL.Image

from .._shared._checks import strict_booleans
from .._shared._files import check_free, write_atomic
from .blit import Animation

__all__ = ["to_gif", "to_html"]


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
<style>
body { font-family: "DejaVu Sans", Verdana, sans-serif; color: #222; margin: 1.5em; }
figure { margin: 0; display: inline-block; }
img { display: block; max-width: 100%; height: auto; border: 1px solid #ddd; }
.controls { display: flex; align-items: center; gap: 0.8em; margin-top: 0.5em; }
.controls input { flex: 1; }
button { min-width: 5em; }
output { font-variant-numeric: tabular-nums; color: #555; }
</style>
</head>
<body>
<figure>
<img id="frame" width="@WIDTH@" height="@HEIGHT@" alt="@TITLE@">
<div class="controls">
<button id="play" type="button">Play</button>
<input id="slider" type="range" min="0" max="@LAST@" value="0" step="1" aria-label="frame">
<output id="label"></output>
</div>
<figcaption><small>@CAPTION@</small></figcaption>
</figure>
<script>
"use strict";
const frames = [
@FRAMES@
];
(function () {
  const img = document.getElementById("frame");
  const slider = document.getElementById("slider");
  const button = document.getElementById("play");
  const label = document.getElementById("label");
  let timer = null;
  function show(i) {
    slider.value = i;
    img.src = frames[i];
    label.textContent = "frame " + (i + 1) + " / " + frames.length;
  }
  function stop() {
    clearInterval(timer);
    timer = null;
    button.textContent = "Play";
  }
  function play() {
    timer = setInterval(function () {
      show((Number(slider.value) + 1) % frames.length);
    }, @INTERVAL@);
    button.textContent = "Pause";
  }
  button.addEventListener("click", function () { if (timer) { stop(); } else { play(); } });
  slider.addEventListener("input", function () { stop(); show(Number(slider.value)); });
  show(0);
})();
</script>
</body>
</html>
"""


def _indexed_frames(animation: Animation):
    """Every frame in 256 colours, all on one palette made from the first, middle and last
    frames (median cut, no dithering: flat colours stay flat, and the same animation always
    gives the same bytes). A quarter of the size of full-colour PNGs, and what GIF needs."""
    n = len(animation)
    samples = [animation.image(i) for i in sorted({0, n // 2, n - 1})]
    width, height = samples[0].size
    sheet = PIL.Image.new("RGB", (width, height * len(samples)))
    for j, sample in enumerate(samples):
        sheet.paste(sample, (0, height * j))
    palette = sheet.quantize(256, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE)
    # Median cut averages its boxes, so the background would come out near-white. Pillow maps a
    # colour to the entry nearest the centre of its small box of colours: whiten that entry
    # until white maps to white (a few near-whites merge, unseen).
    white = PIL.Image.new("RGB", (1, 1), "white")
    colours = palette.getpalette()
    for _ in range(16):
        index = white.quantize(palette=palette, dither=PIL.Image.Dither.NONE).getpixel((0, 0))
        if colours[3 * index : 3 * index + 3] == [255, 255, 255]:
            break
        colours[3 * index : 3 * index + 3] = [255, 255, 255]
        palette.putpalette(colours)
    for i in range(n):
        yield animation.image(i).quantize(palette=palette, dither=PIL.Image.Dither.NONE)


@strict_booleans
def to_html(animation: Animation, path, *, force: bool = False) -> Path:
    """Write ``animation`` as one self-contained HTML file: every frame a base64 PNG on one
    256-colour palette, and a small inline player (play/pause, slider).

    No external script, style sheet or font: it works offline, from a file or an e-mail
    attachment. The same animation always gives the same bytes. The file is rendered in
    memory and written atomically (:func:`kvmviz._shared._files.write_atomic`).

    Parameters
    ----------
    animation : Animation
    path : str or Path
    force : bool
        Overwrite an existing file; otherwise raise ``FileExistsError``, before any frame is
        rendered.

    Returns
    -------
    Path
    """
    (path,) = check_free([path], force=force)
    frames = []
    for frame in _indexed_frames(animation):
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG", compress_level=6)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        frames.append(f'"data:image/png;base64,{encoded}"')
    width, height = animation.canvas.get_width_height()
    title = html.escape(f"kvmviz: {animation.name}")
    text = (
        _HTML.replace("@FRAMES@", ",\n".join(frames))
        .replace("@TITLE@", title)
        .replace("@WIDTH@", str(width))
        .replace("@HEIGHT@", str(height))
        .replace("@LAST@", str(len(animation) - 1))
        .replace("@INTERVAL@", str(max(1, round(1000 / animation.fps))))
        .replace("@CAPTION@", f"{len(animation)} frames at {animation.fps:g} per second")
    )
    return write_atomic({path: text.encode("utf-8")}, force=force)[0]


@strict_booleans
def to_gif(animation: Animation, path, *, fps: float = 10, force: bool = False) -> Path:
    """Write ``animation`` as a looping GIF, one GIF frame per animation frame.

    The frames share one 256-colour palette (no dithering: flat colours stay flat, and the
    same animation always gives the same bytes); Pillow's GIF writer stores each frame as its
    difference from the one before. Rendered in memory and written atomically
    (:func:`kvmviz._shared._files.write_atomic`).

    Parameters
    ----------
    animation : Animation
    path : str or Path
    fps : float
        Frames per second (GIF stores delays in 10 ms steps).
    force : bool
        Overwrite an existing file; otherwise raise ``FileExistsError``, before any frame is
        rendered.

    Returns
    -------
    Path
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    (path,) = check_free([path], force=force)
    frames = list(_indexed_frames(animation))
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    return write_atomic({path: buffer.getvalue()}, force=force)[0]
