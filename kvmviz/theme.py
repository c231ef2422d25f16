"""One look for every figure, widget and animation: the semantic colours and ``set_theme()``.

Colours come from seaborn's colour-blind-safe palette and always mean the same thing
(STYLE.md): blue a vCPU fault holding ``mmu_lock`` for read, vermilion a notifier holding it for
write, orange waiting, green a memslot, grey an hva outside every memslot. A second channel
(hatching or line style) goes with each so figures survive grey-scale printing.
"""

from __future__ import annotations

__all__ = [
    "BEHIND_STYLES",
    "COLORS",
    "HATCHES",
    "KERNEL_STYLES",
    "POLICY_STYLES",
    "set_theme",
]

COLORS = {
    "read": "#0173b2",  # vCPU fault holding the read lock
    "write": "#d55e00",  # notifier holding the write lock
    "wait": "#de8f05",  # waiting / stalled
    "memslot": "#029e73",  # memslot
    "miss": "#949494",  # hva outside every memslot
    "hit": "#d55e00",  # a notifier range that hits a memslot takes the write lock
    "miss_face": "#ececec",  # the pale ground under a miss's grey hatch: light, and opaque
    "hit_face": "#f7d9c4",  # the pale ground of a hit drawn under smaller hits: vermilion, light
    "text": "#222222",
}
HATCHES = {"miss": "////", "wait": "...", "write": "", "read": "", "memslot": ""}
# The parts of a brownout (kvmviz.metrics.BEHIND): what the stalled faults waited behind. A
# miss is grey and hatched as on the maps; a hit vermilion, the notifier's write hold; a stall
# behind other faults alone (the shadow MMU, where faults write-lock) blue, the faults' colour,
# with a hatch of its own.
BEHIND_STYLES = {
    "miss": {"color": COLORS["miss"], "hatch": "////", "label": "behind misses (spurious)"},
    "hit": {"color": COLORS["hit"], "hatch": "", "label": "behind hits (guest memory)"},
    "fault": {"color": COLORS["read"], "hatch": "xx", "label": "behind other faults only"},
}
# Kernels: a grey scale plus one accent for the kernel that fixes it (Rougier), and a line style.
KERNEL_STYLES = {
    "v5.12": {"color": "#333333", "linestyle": "-", "label": "v5.12 (always lock)"},
    "v5.13": {"color": "#949494", "linestyle": "--", "label": "v5.13 (8931a454ae)"},
    "v5.15": {"color": "#0173b2", "linestyle": "-", "label": "v5.15 (071064f14d87)"},
}
# Lock policies (kvmviz.rwlock), when runs are labelled by policy: the kernel's fair lock dark,
# the unfair contrast in the accent, the exclusive lock light; a line style for each.
POLICY_STYLES = {
    "qrwlock": {"color": "#333333", "linestyle": "-", "label": "qrwlock (fair)"},
    "reader-pref": {"color": "#0173b2", "linestyle": "--", "label": "reader-pref (unfair)"},
    "spinlock": {"color": "#949494", "linestyle": ":", "label": "spinlock (exclusive)"},
}

_CONTEXTS = ("paper", "notebook", "talk")


def set_theme(context: str = "notebook") -> None:
    """Apply the kvmviz look to matplotlib (through seaborn).

    Parameters
    ----------
    context : {"paper", "notebook", "talk"}
        Scales fonts and lines: a blog figure, a notebook, slides.

    Notes
    -----
    Also fixes what makes SVG output reproducible: a constant ``svg.hashsalt`` and no date in
    the metadata (pass ``metadata={"Date": None}`` when saving; :func:`kvmviz.plot.save` does).
    """
    if context not in _CONTEXTS:
        raise ValueError(f"unknown context {context!r}; expected one of {_CONTEXTS}")
    import seaborn as sns

    sns.set_theme(
        context=context,
        style="ticks",
        palette="colorblind",
        font="DejaVu Sans",
        rc={
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlelocation": "left",
            "axes.titleweight": "bold",
            "figure.dpi": 100,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "svg.hashsalt": "kvmviz",
            "svg.fonttype": "path",
            "hatch.linewidth": 0.6,
            "legend.frameon": False,
        },
    )
