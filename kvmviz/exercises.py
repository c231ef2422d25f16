"""Seeded exercises with answers you can check, the way OSTEP's simulators offer ``-c``.

The same seed gives the same problem to a whole room. Each exercise prints its question with
``?`` in place of the answer; ``check(answer)`` says whether an answer is right and why;
``reveal()`` shows the answer. The answers come from the model itself (``kernels.rule``,
``MemslotLayout.gfn_ranges``, ``rwlock.replay``), never from a hand-written key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kernels import CALLBACKS, KERNELS, rule
from .memslots import PAGE_SIZE, MemslotLayout
from .presets import VMM_HEAP, q35_512m_layout
from .rwlock import replay

__all__ = ["Exercise", "grant_order", "takes_lock_question", "zapped_gfns"]


@dataclass
class Exercise:
    """One generated question.

    Attributes
    ----------
    kind : str
    seed : int
    question : str
        Markdown text of the question.
    answer : object
        The right answer (look only after trying!).
    explanation : str
        Why that is the answer, citing the kernel rule.
    """

    kind: str
    seed: int
    question: str
    answer: object = field(repr=False)
    explanation: str = field(repr=False)

    def check(self, answer) -> tuple[bool, str]:
        """Whether ``answer`` is right, and a sentence saying why.

        Examples
        --------
        >>> q = takes_lock_question(seed=1)
        >>> q.check(q.answer)[0]
        True
        """
        right = _normalise(answer) == _normalise(self.answer)
        verdict = "Right!" if right else f"Not quite: the answer is {self.answer!r}."
        return right, f"{verdict} {self.explanation}"

    def reveal(self) -> str:
        """The answer with its explanation."""
        return f"Answer: {self.answer!r}. {self.explanation}"

    def _repr_markdown_(self) -> str:
        return f"**Exercise ({self.kind}, seed {self.seed})**\n\n{self.question}"

    def __str__(self) -> str:
        return f"[{self.kind}, seed {self.seed}] {self.question}"

    def widget(self):
        """An ipywidgets box: the question, a text box, Check and Reveal buttons."""
        import ipywidgets as w

        text = w.Text(placeholder="your answer", description="answer")
        out = w.HTML()
        check, reveal = w.Button(description="Check"), w.Button(description="Reveal answer")

        def on_check(_):
            try:
                value = _parse(text.value, self.answer)
            except ValueError as error:
                out.value = f"<i>{error}</i>"
                return
            ok, why = self.check(value)
            out.value = f"<b>{'✔' if ok else '✘'}</b> {why}"

        check.on_click(on_check)
        reveal.on_click(lambda _: setattr(out, "value", self.reveal()))
        return w.VBox(
            [w.HTML(_markdown_to_html(self.question)), w.HBox([text, check, reveal]), out]
        )


def _normalise(value):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, tuple | list):
        return [_normalise(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "y"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "n"):
        return False
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _parse(text: str, like):
    """Parse a typed answer into the shape of ``like``."""
    text = text.strip()
    if isinstance(like, bool):
        return text
    if isinstance(like, list):
        try:
            return [int(x, 0) for x in text.replace(",", " ").split()]
        except ValueError:
            raise ValueError("type numbers separated by spaces, e.g. 0 5 12") from None
    return text


def _markdown_to_html(text: str) -> str:
    import html

    return "<p>" + html.escape(text).replace("\n\n", "</p><p>").replace("`", "") + "</p>"


def _rng(kind: str, seed: int) -> np.random.Generator:
    # Seeds derive from readable strings, so two kinds with one seed differ.
    return np.random.default_rng([int(seed), *kind.encode()])


def takes_lock_question(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Does this callback, on this kernel, on this hva range, take ``mmu_lock``?

    Answer: ``True`` or ``False`` (``"yes"`` / ``"no"`` accepted by :meth:`Exercise.check`).
    """
    layout = q35_512m_layout() if layout is None else layout
    rng = _rng("takes_lock", seed)
    kernel = KERNELS[rng.integers(len(KERNELS))]
    callback = CALLBACKS[rng.integers(len(CALLBACKS))]
    if rng.random() < 0.5:
        slot = layout.slots[rng.integers(len(layout))]
        start = slot.hva_start + int(rng.integers(slot.npages)) * PAGE_SIZE
    else:
        start = VMM_HEAP[0] + int(rng.integers(1 << 16)) * PAGE_SIZE
    end = start + PAGE_SIZE * int(rng.integers(1, 17))
    hit = layout.hits(start, end)
    r = rule(kernel, callback, hit)
    slots = ", ".join(f"slot {s.slot}: hva {s.hva_start:#x}-{s.hva_end:#x}" for s in layout)
    question = (
        f"The VM's memslots: {slots}.\n\nOn **{kernel}**, the MMU notifier calls `{callback}` "
        f"on hva range [{start:#x}, {end:#x}). Does KVM take `mmu_lock` for write? "
        "(answer True or False)"
    )
    where = "hits a memslot" if hit else "misses every memslot"
    explanation = f"The range {where}; {kernel}: {r.source}."
    return Exercise("takes_lock", int(seed), question, bool(r.takes_lock), explanation)


def zapped_gfns(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Which gfns does ``invalidate_range_start`` on this range zap? Answer: ``[start, end]``
    (end exclusive) per hit slot, flattened: ``[gfn_start, gfn_end, ...]``."""
    layout = q35_512m_layout() if layout is None else layout
    rng = _rng("zapped_gfns", seed)
    slot = layout.slots[rng.integers(len(layout))]
    start = slot.hva_start + int(rng.integers(slot.size_bytes))
    end = start + int(rng.integers(1, 5 * PAGE_SIZE))
    ranges = layout.gfn_ranges(start, end)
    answer = [x for g in ranges for x in (g.gfn_start, g.gfn_end)]
    question = (
        f"Slot {slot.slot} maps gfn {slot.base_gfn:#x} at hva {slot.hva_start:#x} "
        f"({slot.npages} pages). A notifier invalidates hva [{start:#x}, {end:#x}). "
        "Which gfn range is zapped? Answer as `gfn_start gfn_end` (end exclusive)."
    )
    explanation = (
        "__kvm_handle_hva_range clips the range to the slot, converts the start with "
        "hva_to_gfn_memslot and the end rounded up to a page, so every page the range touches "
        f"is zapped: {', '.join(f'[{g.gfn_start:#x}, {g.gfn_end:#x})' for g in ranges)}."
    )
    return Exercise("zapped_gfns", int(seed), question, answer, explanation)


def grant_order(seed: int = 0, policy: str = "qrwlock", n: int = 6) -> Exercise:
    """At what times does ``policy`` grant these requests? Answer: the list of grant times."""
    rng = _rng("grant_order", seed)
    arrival = np.sort(rng.integers(0, 12, n))
    is_writer = rng.random(n) < 0.35
    is_writer[rng.integers(1, n)] = True  # at least one writer, not always first
    hold = rng.integers(1, 6, n)
    grants = replay(arrival, is_writer, hold, policy=policy).astype(int).tolist()
    lines = "\n".join(
        f"- request {i}: {'writer' if w else 'reader'} arrives at t={a}, holds {h}"
        for i, (a, w, h) in enumerate(zip(arrival, is_writer, hold, strict=True))
    )
    question = (
        f"Under **{policy}**, at what time is each request granted?\n\n{lines}\n\n"
        "Answer with the grant times in request order, e.g. `0 3 3 7 ...`."
    )
    explanation = {
        "qrwlock": "qrwlock: a reader enters at once only if no writer holds or waits; a "
        "waiting writer blocks every newer reader until the readers inside have left.",
        "reader-pref": "reader-pref: a reader enters unless a writer holds; writers wait "
        "until no reader is inside.",
        "spinlock": "spinlock: one holder at a time, first come first served.",
    }[policy] + f" Grants: {grants}."
    return Exercise(f"grant_order/{policy}", int(seed), question, grants, explanation)
