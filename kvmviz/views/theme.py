"""One look for every figure, widget and animation: the semantic colours, ``set_theme()`` and
the style sheets.

Colours come from seaborn's colour-blind-safe palette and always mean the same thing
(STYLE.md): blue a vCPU fault holding ``mmu_lock`` for read, vermilion a notifier holding it for
write, orange waiting, green a memslot, grey an hva outside every memslot. A second channel
(hatching or line style) goes with each so figures survive grey-scale printing.

Two palettes, one per style of :data:`STYLES`:

* ``"light"``, dark ink on a white page: :data:`COLORS`, :data:`KERNEL_STYLES`,
  :data:`POLICY_STYLES` and :data:`BEHIND_STYLES`;
* ``"dark"``, light ink on a near-black page: :data:`DARK_COLORS`, :data:`DARK_KERNEL_STYLES`,
  :data:`DARK_POLICY_STYLES` and :data:`DARK_BEHIND_STYLES`, the same hues made light enough
  to stand out (every line colour has a contrast ratio of at least 3 against
  :data:`DARK_BACKGROUND`), v5.12 a light grey and v5.15 a light blue.

The figures never read these dictionaries directly: they call the accessors :func:`color`,
:func:`kernel_style`, :func:`policy_style` and :func:`behind_style` while they draw, and these
pick the palette from the *current* matplotlib settings (:func:`is_dark`: the luminance of
``axes.facecolor``). So a figure is drawn dark after ``kv.set_theme(style="dark")`` and equally
inside ``plt.style.context(kv.theme.style_sheet("dark"))`` or any dark style sheet of one's
own, such as matplotlib's ``"dark_background"``.

:data:`KERNEL_STYLES` gives each kernel a colour, a line style and a label::

    {"v5.12": {"color": "#333333", "linestyle": "-", "label": "v5.12 (always lock)"}, ...}

To draw the kernels in colours of your own, do not edit it: pass them to
``kv.set_theme(kernel_colors={"v5.12": "#7f3b08", "v5.15": "#2d004b"})``; they hold in both
styles until the next :func:`set_theme` call.

Examples
--------
>>> import kvmviz as kv
>>> kv.set_theme("talk", style="dark")  # doctest: +SKIP
>>> import matplotlib.pyplot as plt
>>> with plt.style.context(kv.theme.style_sheet("light", "paper")):  # doctest: +SKIP
...     fig = kv.gallery.render("brownout")
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "BACKGROUND",
    "BEHIND_STYLES",
    "COLORS",
    "CONTEXTS",
    "DARK_BACKGROUND",
    "DARK_BEHIND_STYLES",
    "DARK_COLORS",
    "DARK_KERNEL_STYLES",
    "DARK_POLICY_STYLES",
    "HATCHES",
    "KERNEL_STYLES",
    "POLICY_STYLES",
    "SHORT_CALLBACKS",
    "STYLES",
    "STYLE_DIR",
    "Themed",
    "behind_style",
    "color",
    "contrast",
    "is_dark",
    "isolated",
    "kernel_label",
    "kernel_style",
    "palette",
    "policy_style",
    "rc_params",
    "set_theme",
    "sheet_text",
    "style_sheet",
    "write_style_sheets",
]

STYLES = ("light", "dark")
"""The styles :func:`set_theme` and :func:`style_sheet` offer."""
CONTEXTS = ("paper", "notebook", "talk", "poster")
"""Contexts, smallest text first: they scale the fonts and line widths, never the figure."""

BACKGROUND = "#ffffff"
"""The light style's page."""
DARK_BACKGROUND = "#1c1c1c"
"""The dark style's page: near black, as dark blog themes and slide decks have it."""

COLORS = {
    "read": "#0173b2",  # vCPU fault holding the read lock
    "write": "#d55e00",  # notifier holding the write lock
    "wait": "#de8f05",  # waiting / stalled
    "memslot": "#029e73",  # memslot
    "miss": "#949494",  # hva outside every memslot
    "hit": "#d55e00",  # a notifier range that hits a memslot takes the write lock
    "miss_face": "#ececec",  # the pale ground under a miss's grey hatch: light, and opaque
    "hit_face": "#f7d9c4",  # the pale ground of a hit drawn under smaller hits: vermilion, light
    "retry_face": "#aad0e5",  # a retried fault: "read" at a third over the page
    "text": "#222222",
    "strong": "#333333",  # the darkest line (v5.12's; the fair lock's)
    "muted": "#555555",  # secondary text (notes, marks' labels)
    "faint": "#bbbbbb",  # guide lines, outlines of empty things
    "grid": "#cccccc",  # lane separators
    "box_face": "#f2f2f2",  # the ground of a drawn box (the lock in the animations)
    "background": BACKGROUND,  # the page; also the gaps between bars
    "note_face": BACKGROUND,  # the box behind a note written over lines
}
"""The light palette: semantic name -> colour."""

DARK_COLORS = {
    "read": "#56b4e9",
    "write": "#d55e00",
    "wait": "#de8f05",
    "memslot": "#029e73",
    "miss": "#949494",
    "hit": "#d55e00",
    "miss_face": "#363636",
    "hit_face": "#5c3520",
    "retry_face": "#2d5168",
    "text": "#e8e8e8",
    "strong": "#dcdcdc",
    "muted": "#b0b0b0",
    "faint": "#5e5e5e",
    "grid": "#444444",
    "box_face": "#2c2c2c",
    "background": DARK_BACKGROUND,
    "note_face": DARK_BACKGROUND,
}
"""The dark palette: the names of :data:`COLORS`, light ink for a dark page."""

HATCHES = {"miss": "////", "wait": "...", "write": "", "read": "", "memslot": ""}


def _behind(colors: dict) -> dict:
    # The parts of a brownout (kvmviz.metrics.BEHIND): what the stalled faults waited behind. A
    # miss is grey and hatched as on the maps; a hit vermilion, the notifier's write hold; a
    # stall behind other faults alone (the shadow MMU, where faults write-lock) blue, the
    # faults' colour, with a hatch of its own.
    return {
        "miss": {"color": colors["miss"], "hatch": "////", "label": "behind misses (spurious)"},
        "hit": {"color": colors["hit"], "hatch": "", "label": "behind hits (guest memory)"},
        "fault": {"color": colors["read"], "hatch": "xx", "label": "behind other faults only"},
    }


BEHIND_STYLES = _behind(COLORS)
"""The parts of a brownout (:data:`kvmviz.metrics.BEHIND`) on the light page."""
DARK_BEHIND_STYLES = _behind(DARK_COLORS)
"""The parts of a brownout on the dark page."""

# Kernels: the 2021 story is a grey scale plus one accent for the kernel that fixes it
# (Rougier), and a line style. The milestones since (kvmviz.kernels.KERNELS) take the hues of
# the same colour-blind-safe palette that no semantic colour uses (STYLE.md): brown, reddish
# purple and yellow, each darkened on the light page until it stands out on white (contrast
# >= 3), and a line style of their own.
KERNEL_STYLES = {
    "v5.12": {"color": "#333333", "linestyle": "-", "label": "v5.12 (always lock)"},
    "v5.13": {"color": "#949494", "linestyle": "--", "label": "v5.13 (8931a454ae)"},
    "v5.15": {"color": "#0173b2", "linestyle": "-", "label": "v5.15 (071064f14d87)"},
    "v6.7": {"color": "#94673a", "linestyle": "-.", "label": "v6.7 (no pre-check)"},
    "v6.8": {"color": "#b3619f", "linestyle": "--", "label": "v6.8 (d02c357e5bfa)"},
    "v6.18": {"color": "#857600", "linestyle": "-", "label": "v6.18 (mainline)"},
}
"""Kernel -> colour, line style and label, on the light page (change colours with
``set_theme(kernel_colors=...)``): the milestones of :data:`kvmviz.KERNELS`; any other
release is drawn in the faults' colour, labelled with its name."""
DARK_KERNEL_STYLES = {
    "v5.12": {**KERNEL_STYLES["v5.12"], "color": "#dcdcdc"},
    "v5.13": {**KERNEL_STYLES["v5.13"], "color": "#8f8f8f"},
    "v5.15": {**KERNEL_STYLES["v5.15"], "color": "#56b4e9"},
    "v6.7": {**KERNEL_STYLES["v6.7"], "color": "#ca9161"},
    "v6.8": {**KERNEL_STYLES["v6.8"], "color": "#cc78bc"},
    "v6.18": {**KERNEL_STYLES["v6.18"], "color": "#ece133"},
}
"""Kernel -> style on the dark page: the grey scale turned over, v5.15 a light blue, the
v6 milestones in the palette's own light brown, reddish purple and yellow."""


def kernel_label(kernel: str) -> str:
    """A kernel's long label (:data:`KERNEL_STYLES`: ``"v5.13 (8931a454ae)"``), or ``kernel``
    itself for any other label: the title of an animation's panel."""
    return KERNEL_STYLES.get(kernel, {}).get("label", kernel)


SHORT_CALLBACKS = {
    "invalidate_range_start": "inv. start",
    "invalidate_range_end": "inv. end",
    "change_pte": "change_pte",
    "clear_flush_young": "flush_young",
    "clear_young": "clear_young",
    "test_young": "test_young",
}
"""Notifier callback -> its short name in the animations' labels (a name not here is shown
whole)."""

# Lock policies (kvmviz.rwlock), when runs are labelled by policy: the kernel's fair lock dark,
# the unfair contrast in the accent, the exclusive lock light; a line style for each.
POLICY_STYLES = {
    "qrwlock": {"color": "#333333", "linestyle": "-", "label": "qrwlock (fair)"},
    "reader-pref": {"color": "#0173b2", "linestyle": "--", "label": "reader-pref (unfair)"},
    "spinlock": {"color": "#949494", "linestyle": ":", "label": "spinlock (exclusive)"},
}
"""Lock policy -> colour, line style and label, on the light page."""
DARK_POLICY_STYLES = {
    "qrwlock": {**POLICY_STYLES["qrwlock"], "color": "#dcdcdc"},
    "reader-pref": {**POLICY_STYLES["reader-pref"], "color": "#56b4e9"},
    "spinlock": {**POLICY_STYLES["spinlock"], "color": "#8f8f8f"},
}
"""Lock policy -> style on the dark page."""

_PALETTES = {
    "light": (COLORS, KERNEL_STYLES, POLICY_STYLES, BEHIND_STYLES),
    "dark": (DARK_COLORS, DARK_KERNEL_STYLES, DARK_POLICY_STYLES, DARK_BEHIND_STYLES),
}
# seaborn's "colorblind" palette; on the dark page its light blue comes first (its dark blue,
# the faults' colour on white, is too dark on black) and the dark blue last.
_CYCLE = {
    "light": [
        "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
        "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
    ],
    "dark": [
        "#56b4e9", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
        "#ca9161", "#fbafe4", "#949494", "#ece133", "#0173b2",
    ],
}  # fmt: skip

# The kernel colours set_theme was last given (None: the palette's own).
_kernel_colors: dict[str, str] = {}


# --------------------------------------------------------------------------------------------
# The rc table: everything set_theme sets, and what the style sheets contain.
# --------------------------------------------------------------------------------------------
# seaborn's plotting_context: one scale per context over the "notebook" sizes.
_SCALE = {"paper": 0.8, "notebook": 1.0, "talk": 1.5, "poster": 2.0}
_NOTEBOOK_SIZES = {
    "font.size": 12,
    "axes.labelsize": 12,
    "axes.titlesize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "legend.title_fontsize": 12,
    "axes.linewidth": 1.25,
    "grid.linewidth": 1,
    "lines.linewidth": 1.5,
    "lines.markersize": 6,
    "patch.linewidth": 1,
    "xtick.major.width": 1.25,
    "ytick.major.width": 1.25,
    "xtick.minor.width": 1,
    "ytick.minor.width": 1,
    "xtick.major.size": 6,
    "ytick.major.size": 6,
    "xtick.minor.size": 4,
    "ytick.minor.size": 4,
}
# seaborn's "ticks" style, and the house rules on top of it: no top or right spine, bold titles
# on the left, no legend frame; SVG text kept as text in one fixed font (DejaVu Sans, which
# matplotlib ships, so the layout is the same everywhere), and a fixed hash salt, so the same
# figure gives the same bytes.
_COMMON = {
    "axes.axisbelow": True,
    "axes.grid": False,
    "axes.spines.left": True,
    "axes.spines.bottom": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlelocation": "left",
    "axes.titleweight": "bold",
    "xtick.direction": "out",
    "ytick.direction": "out",
    "xtick.top": False,
    "ytick.right": False,
    "xtick.bottom": True,
    "ytick.left": True,
    "grid.linestyle": "-",
    "lines.solid_capstyle": "round",
    "patch.force_edgecolor": True,
    "font.family": ["sans-serif"],
    "font.sans-serif": ["DejaVu Sans", "Bitstream Vera Sans"],
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.transparent": False,
    "svg.hashsalt": "kvmviz",
    "svg.fonttype": "none",
    "hatch.linewidth": 0.6,
    "hatch.color": "edge",
    "legend.frameon": False,
}


def _colour_rc(style: str) -> dict:
    colors = _PALETTES[style][0]
    page, ink = colors["background"], colors["text"]
    return {
        "figure.facecolor": page,
        "figure.edgecolor": page,
        "axes.facecolor": page,
        "savefig.facecolor": page,
        "savefig.edgecolor": page,
        "patch.edgecolor": page,
        "text.color": ink,
        "axes.labelcolor": ink,
        "axes.edgecolor": ink,
        "xtick.color": ink,
        "ytick.color": ink,
        "xtick.labelcolor": "inherit",
        "ytick.labelcolor": "inherit",
        "grid.color": colors["grid"],
        "legend.facecolor": "inherit",
        "legend.edgecolor": colors["faint"],
        "legend.labelcolor": "None",
        "lines.color": ink,
        "patch.facecolor": _CYCLE[style][0],
        "boxplot.flierprops.markeredgecolor": ink,
        "boxplot.boxprops.color": ink,
        "boxplot.whiskerprops.color": ink,
        "boxplot.capprops.color": ink,
        "boxplot.medianprops.color": _CYCLE[style][1],
        "axes.prop_cycle": _cycler(_CYCLE[style]),
    }


def _cycler(colors):
    from cycler import cycler

    return cycler(color=list(colors))


def rc_params(context: str = "notebook", style: str = "light") -> dict:
    """The matplotlib settings of a context and style: what :func:`set_theme` applies and
    what :func:`style_sheet`'s file holds.

    Every context and style sets the same keys (the theme owns them).

    Parameters
    ----------
    context : {"paper", "notebook", "talk", "poster"}
    style : {"light", "dark"}

    Returns
    -------
    dict
        rcParams key -> value, as :data:`matplotlib.rcParams` holds it once validated.
    """
    _check(context, style)
    scale = _SCALE[context]
    sizes = {key: round(value * scale, 4) for key, value in _NOTEBOOK_SIZES.items()}
    return {**_COMMON, **sizes, **_colour_rc(style)}


def _check(context: str, style: str) -> None:
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; expected one of {CONTEXTS}")
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


def set_theme(
    context: str = "notebook",
    style: str = "light",
    *,
    kernel_colors: dict[str, str] | None = None,
) -> None:
    """Apply the kvmviz look to matplotlib.

    The theme owns every setting it makes: each call first puts all of them back to
    matplotlib's defaults and then sets them, so nothing from an earlier call or an earlier
    ``rcParams`` change of one's own (a ``savefig.facecolor``, a dark page) carries over.
    Settings the theme does not make (the backend, ``figure.figsize``, ...) are left alone.

    Parameters
    ----------
    context : {"paper", "notebook", "talk", "poster"}
        The size of the text (and the width of lines): a blog figure, a notebook, slides, a
        poster. The figure's size does not change, so a larger context makes the text larger
        relative to the figure.
    style : {"light", "dark"}
        Dark ink on a white page, or light ink on a near-black page (:data:`DARK_BACKGROUND`).
        The background is baked into saved files (:func:`kvmviz.plot.save` can leave it out).
    kernel_colors : dict of str to colour, optional
        Colours of one's own for some kernels, e.g. ``{"v5.15": "#7b3294"}``, used by every
        figure until the next call (whatever the style); other kernels keep the palette's.

    Raises
    ------
    ValueError
        An unknown context or style, or a kernel colour matplotlib cannot read.

    See Also
    --------
    style_sheet : the same settings as a matplotlib style sheet.
    rc_params : the settings as a dictionary.

    Notes
    -----
    SVG files keep their text as ``<text>`` elements in DejaVu Sans (``svg.fonttype: none``)
    and carry a constant ``svg.hashsalt``; with no date in the metadata (pass
    ``metadata={"Date": None}`` when saving; :func:`kvmviz.plot.save` does) the same figure
    gives the same bytes.
    """
    import matplotlib as mpl
    from matplotlib.colors import is_color_like

    rc = rc_params(context, style)
    colours = dict(kernel_colors or {})
    bad = {k: c for k, c in colours.items() if not is_color_like(c)}
    if bad:
        raise ValueError(f"kernel_colors: not colours: {bad!r}")
    for key in rc:
        mpl.rcParams[key] = mpl.rcParamsDefault[key]
    mpl.rcParams.update(rc)
    _kernel_colors.clear()
    _kernel_colors.update(colours)


@contextmanager
def isolated(
    context: str = "paper",
    style: str = "light",
    *,
    kernel_colors: dict[str, str] | None = None,
) -> Iterator[None]:
    """For the block, matplotlib's own defaults plus the kvmviz theme, whatever the user's
    ``matplotlibrc`` or earlier ``rcParams`` changes say; everything is put back afterwards.

    :func:`set_theme` changes only the settings the theme owns, so a notebook keeps what its
    reader set (a font, a default figure size). A file written for someone else must not
    depend on that: a ``matplotlibrc`` with ``text.usetex: True`` and no LaTeX would make it
    fail, one with ``savefig.facecolor: black`` would change every file, and "one seed gives
    byte-identical files" would hold only on the machine that made them. ``kvmviz figures``
    and the animations therefore render inside this block. The backend and the other settings
    that steer a GUI rather than a figure (matplotlib's ``STYLE_BLACKLIST``) are left alone.

    Parameters
    ----------
    context, style, kernel_colors
        As for :func:`set_theme`.
    """
    import matplotlib as mpl

    colours = dict(_kernel_colors)
    with mpl.rc_context():
        mpl.rcdefaults()
        set_theme(context, style, kernel_colors=kernel_colors)
        try:
            yield
        finally:
            _kernel_colors.clear()
            _kernel_colors.update(colours)


# --------------------------------------------------------------------------------------------
# Accessors: the colours of the current settings, read by the views while they draw.
# --------------------------------------------------------------------------------------------
def _luminance(colour) -> float:
    """WCAG relative luminance of a colour (alpha ignored)."""
    from matplotlib.colors import to_rgb

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in to_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    """WCAG contrast ratio of two colours, from 1 (the same) to 21 (black on white).

    Parameters
    ----------
    a, b : colour
        Anything matplotlib reads as a colour.

    Returns
    -------
    float
    """
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _page():
    """The current page colour: ``axes.facecolor``, else ``figure.facecolor``, else None."""
    import matplotlib as mpl
    from matplotlib.colors import to_rgba

    for key in ("axes.facecolor", "figure.facecolor"):
        try:
            rgba = to_rgba(mpl.rcParams[key])
        except ValueError:
            continue
        if rgba[3] > 0:
            return rgba
    return None


def is_dark() -> bool:
    """Whether the current matplotlib settings draw on a dark page.

    Read from ``axes.facecolor`` (or ``figure.facecolor`` when the axes are transparent):
    dark when its luminance is below that of mid grey, so that :func:`set_theme`, the style
    sheets of :func:`style_sheet` and any style sheet of one's own all count.

    Returns
    -------
    bool
    """
    page = _page()
    return page is not None and _luminance(page) < 0.18


def palette() -> dict[str, str]:
    """The semantic colours for the current settings: :data:`COLORS` or :data:`DARK_COLORS`.

    ``"background"`` and ``"note_face"`` are the page actually in use (a style sheet of one's
    own may have another dark or light page than the theme's).

    Returns
    -------
    dict of str to str
        A copy; name -> colour.
    """
    from matplotlib.colors import to_hex

    colours = dict(_PALETTES["dark" if is_dark() else "light"][0])
    page = _page()
    if page is not None:
        colours["background"] = colours["note_face"] = to_hex(page)
    return colours


def color(name: str) -> str:
    """One semantic colour for the current settings (light or dark page, :func:`is_dark`).

    Parameters
    ----------
    name : str
        A key of :data:`COLORS`: ``"read"``, ``"write"``, ``"wait"``, ``"memslot"``,
        ``"miss"``, ``"hit"``, ``"miss_face"``, ``"hit_face"``, ``"retry_face"``, ``"text"``,
        ``"strong"``, ``"muted"``, ``"faint"``, ``"grid"``, ``"box_face"``, ``"background"``
        (the page) or ``"note_face"`` (the box behind a note).

    Returns
    -------
    str
        A colour matplotlib reads.
    """
    colours = palette()
    if name not in colours:
        raise KeyError(f"unknown colour {name!r}; expected one of {sorted(colours)}")
    return colours[name]


class Themed(Mapping):
    """Keyword arguments of an artist whose colours are names of the palette, looked up each
    time they are read, so that a style kept in a module constant follows the page.

    ``Themed(facecolor="hit", edgecolor="background", linewidth=0.5)`` unpacks (``**style``)
    to the current page's hit colour and background; values that are not names of
    :data:`COLORS` (a line width, ``"none"``, a colour such as ``"#ff0000"``) are passed
    through.

    Parameters
    ----------
    **style
        Artist properties.
    """

    def __init__(self, **style) -> None:
        self._style = style

    def __getitem__(self, key):
        value = self._style[key]
        if isinstance(value, str) and value in COLORS:
            return color(value)
        return value

    def __iter__(self):
        return iter(self._style)

    def __len__(self) -> int:
        return len(self._style)

    def __repr__(self) -> str:
        return f"Themed({', '.join(f'{k}={v!r}' for k, v in self._style.items())})"


def kernel_style(kernel: str) -> dict:
    """The style of a kernel's lines and bars for the current settings.

    Parameters
    ----------
    kernel : str
        A kernel of :data:`KERNEL_STYLES`; any other name gets the faults' colour, a solid
        line and itself as label.

    Returns
    -------
    dict
        A copy with ``"color"``, ``"linestyle"`` and ``"label"``; the colour is the one given
        to :func:`set_theme`'s ``kernel_colors`` if any.
    """
    styles = _PALETTES["dark" if is_dark() else "light"][1]
    style = dict(styles.get(kernel) or {"color": color("read"), "linestyle": "-", "label": kernel})
    if kernel in _kernel_colors:
        style["color"] = _kernel_colors[kernel]
    return style


def policy_style(policy: str) -> dict:
    """The style of a lock policy's lines for the current settings.

    Parameters
    ----------
    policy : str
        A policy of :data:`POLICY_STYLES`; any other name gets the faults' colour.

    Returns
    -------
    dict
        A copy with ``"color"``, ``"linestyle"`` and ``"label"``.
    """
    styles = _PALETTES["dark" if is_dark() else "light"][2]
    return dict(styles.get(policy) or {"color": color("read"), "linestyle": "-", "label": policy})


def behind_style(part: str) -> dict:
    """The style of one part of a brownout (:data:`kvmviz.metrics.BEHIND`).

    Parameters
    ----------
    part : {"miss", "hit", "fault"}

    Returns
    -------
    dict
        A copy with ``"color"``, ``"hatch"`` and ``"label"``.
    """
    return dict(_PALETTES["dark" if is_dark() else "light"][3][part])


# --------------------------------------------------------------------------------------------
# Style sheets.
# --------------------------------------------------------------------------------------------
STYLE_DIR = Path(__file__).resolve().parent.parent / "styles"
"""Where the packaged style sheets are (``kvmviz-<style>[-<context>].mplstyle``)."""


def _sheet_name(style: str, context: str) -> str:
    return (
        f"kvmviz-{style}.mplstyle"
        if context == "notebook"
        else f"kvmviz-{style}-{context}.mplstyle"
    )


def style_sheet(style: str = "light", context: str = "paper") -> str:
    """The path of a matplotlib style sheet with :func:`set_theme`'s settings.

    Usable wherever matplotlib takes a style: ``plt.style.use(path)``,
    ``with plt.style.context(path): ...``. Every sheet is also reachable by name, e.g.
    ``plt.style.use("kvmviz.styles.kvmviz-dark-paper")``; ``kvmviz-light`` and ``kvmviz-dark``
    are the notebook context, :func:`set_theme`'s default.

    Parameters
    ----------
    style : {"light", "dark"}
    context : {"paper", "notebook", "talk", "poster"}
        Paper by default: the sheets are for files (a blog post's figures).

    Returns
    -------
    str
        An absolute path to a ``.mplstyle`` file inside the installed package.

    Notes
    -----
    A style sheet cannot carry ``kernel_colors``; the figures still pick the dark palette
    under a dark sheet (:func:`is_dark`).
    """
    _check(context, style)
    return str(STYLE_DIR / _sheet_name(style, context))


def _format(value) -> str:
    from cycler import Cycler

    if isinstance(value, Cycler):
        colours = ", ".join(f"'{_format(c)}'" for c in value.by_key()["color"])
        return f"cycler('color', [{colours}])"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    if isinstance(value, str) and value.startswith("#"):
        return value[1:]  # a bare "#" starts a comment in a style sheet
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def sheet_text(style: str = "light", context: str = "notebook") -> str:
    """The text of the style sheet :func:`style_sheet` points to, made from :func:`rc_params`.

    Parameters
    ----------
    style : {"light", "dark"}
    context : {"paper", "notebook", "talk", "poster"}

    Returns
    -------
    str
    """
    rc = rc_params(context, style)
    head = (
        f"# kvmviz, {style} style, {context} context: the settings of\n"
        f'# kvmviz.set_theme("{context}", style="{style}").\n'
        "# Generated by kvmviz.theme.write_style_sheets(); do not edit by hand.\n"
    )
    return head + "".join(f"{key}: {_format(rc[key])}\n" for key in sorted(rc))


def write_style_sheets(folder=None) -> list[Path]:
    """(Re)write every style sheet from :func:`rc_params`, replacing the old ones, all or none
    (tests/test_theme.py checks that the packaged ones are in step).

    Parameters
    ----------
    folder : str or Path, optional
        Default: the package's ``styles`` folder (:data:`STYLE_DIR`).

    Returns
    -------
    list of Path
        The files written.
    """
    from .._shared._files import write_atomic

    folder = Path(folder) if folder is not None else STYLE_DIR
    sheets = {
        folder / _sheet_name(style, context): sheet_text(style, context).encode("utf-8")
        for style in STYLES
        for context in CONTEXTS
    }
    return write_atomic(sheets, force=True)  # regenerating them is what the call is for
