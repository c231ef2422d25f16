"""Seeded exercises with answers you can check, the way OSTEP's simulators offer ``-c``.

The same seed gives the same problem to a whole room. Each exercise prints its question with
``?`` in place of the answer; ``check(answer)`` says whether an answer is right and why;
``reveal()`` shows the answer. The answers come from the model itself (``kernels.rule``,
``MemslotLayout.gfn_ranges``, ``rwlock.replay``), never from a hand-written key.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_int, check_seed
from .kernels import CALLBACKS, KERNELS, rule
from .memslots import PAGE_SIZE, MemslotLayout
from .presets import VMM_HEAP, q35_512m_layout
from .rwlock import replay

__all__ = [
    "CallbackOrderExercise",
    "Exercise",
    "ZappedGfnsExercise",
    "callback_order",
    "grant_order",
    "hit_flush_hold",
    "memslot_walk_threshold",
    "must_retry",
    "reader_wait",
    "retry_check",
    "takes_lock_question",
    "zapped_gfns",
]


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

    def parse(self, text: str):
        """The answer typed in ``text``, in the shape of :attr:`answer`.

        Raises
        ------
        ValueError
            With a sentence saying how to type the answer, if ``text`` cannot be read.
        """
        return _parse(text, self.answer)

    def check(self, answer) -> tuple[bool, str]:
        """Whether ``answer`` is right, and a sentence saying why.

        ``answer`` is a value of the answer's type or the text a learner types (read by
        :meth:`parse`, so ``"0x4f 0x53"``, ``"yes"`` or ``"7 µs"`` are understood); text that
        cannot be read is not right, and the sentence says how to type it.

        Examples
        --------
        >>> q = takes_lock_question(seed=1)
        >>> q.check(q.answer)[0]
        True
        """
        if isinstance(answer, str) and not isinstance(self.answer, str):
            try:
                answer = self.parse(answer)
            except ValueError as error:
                return False, f"Not understood: {error}."
        right = self._matches(answer)
        verdict = "Right!" if right else f"Not quite: the answer is {self._shown()}."
        return right, f"{verdict} {self.explanation}"

    def _matches(self, answer) -> bool:
        return _normalise(answer) == _normalise(self.answer)

    def _shown(self) -> str:
        return repr(self.answer)

    def reveal(self) -> str:
        """The answer with its explanation."""
        return f"Answer: {self._shown()}. {self.explanation}"

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
                value = self.parse(text.value)
            except ValueError as error:
                out.value = f"<i>{html.escape(str(error))}</i>"
                return
            ok, why = self.check(value)
            out.value = _markdown_to_html(f"**{'✔' if ok else '✘'}** {why}")

        check.on_click(on_check)
        reveal.on_click(lambda _: setattr(out, "value", _markdown_to_html(self.reveal())))
        question = w.HTML(_markdown_to_html(self.question))
        question.add_class("kvmviz-question")
        return w.VBox([question, w.HBox([text, check, reveal]), out])


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


_TRUE, _FALSE = ("true", "yes", "y"), ("false", "no", "n")
# A number as typed: decimal or 0x hex, optionally followed by the unit the question asks in
# (µs as the micro sign or the Greek mu, or "us"; memslots for the walk threshold).
_NUMBER = re.compile(
    r"^\s*(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?))"
    r"\s*(?:µs|μs|us|memslots?|slots?)?\s*$"
)


def _number(token: str) -> float | int:
    match = _NUMBER.match(token)
    if match is None:
        raise ValueError(f"{token!r} is not a number")
    number = match["number"]
    if number.lower().lstrip("+-").startswith("0x"):
        return int(number, 16)
    value = float(number)
    return int(value) if value.is_integer() else value


def _parse(text: str, like):
    """Parse a typed answer into the shape of ``like``.

    Booleans: ``True`` / ``False`` or ``yes`` / ``no`` (any case). Numbers: decimal or ``0x``
    hex, a trailing ``µs`` allowed. Lists of numbers: separated by spaces, commas or
    semicolons, brackets ignored (``[0x4f, 0x53)``), leading zeros fine (``08`` is 8).
    Anything else is returned as typed. Text that is not of the expected shape raises
    ``ValueError`` with a sentence saying how to type it.
    """
    text = text.strip()
    if isinstance(like, bool | np.bool_):
        word = text.lower().rstrip(".!")
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError("type True or False (yes or no also work)")
    if isinstance(like, int | float | np.integer | np.floating):
        try:
            return _number(text)
        except ValueError:
            raise ValueError("type a number, e.g. 7") from None
    if isinstance(like, list):
        try:
            # Brackets are decoration: "[0x4f, 0x53)" is the pair 0x4f 0x53.
            bare = text.translate(str.maketrans(",;[]()", "      "))
            return [_number(x) for x in bare.split()]
        except ValueError:
            raise ValueError("type numbers separated by spaces, e.g. 0 5 12") from None
    return text


_INLINE = re.compile(r"`(?P<code>[^`]+)`|\*\*(?P<strong>.+?)\*\*|\*(?P<em>[^*\s][^*]*?)\*")
_BULLET = re.compile(r"^[-*] (?P<item>.*)$")
_NUMBERED = re.compile(r"^(?P<number>\d+)\. (?P<item>.*)$")


def _inline_html(text: str) -> str:
    """``code``, **strong** and *em* spans of one line of text, everything else escaped."""
    out, at = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[at : match.start()]))
        if match["code"] is not None:  # nothing inside code is formatted
            out.append(f"<code>{html.escape(match['code'])}</code>")
        elif match["strong"] is not None:
            out.append(f"<strong>{_inline_html(match['strong'])}</strong>")
        else:
            out.append(f"<em>{_inline_html(match['em'])}</em>")
        at = match.end()
    out.append(html.escape(text[at:]))
    return "".join(out)


def _markdown_to_html(text: str) -> str:
    """The little Markdown the questions use, as HTML: what the exercise widget shows.

    Paragraphs (separated by a blank line), ``- `` bullet lists, ``1. `` numbered lists,
    ```code```, ``**strong**`` and ``*em*``; every other character is HTML-escaped, so a hva
    range such as ``[0x1000, 0x2000)`` or an arrow ``->`` shows as typed.

    Examples
    --------
    >>> _markdown_to_html("Under **qrwlock**:\\n\\n- request 0 takes `mmu_lock`")
    '<p>Under <strong>qrwlock</strong>:</p><ul><li>request 0 takes <code>mmu_lock</code></li></ul>'
    """
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        # Within a block, consecutive lines of one kind form one paragraph or one list.
        runs: list[tuple[str, list]] = []
        for line in block.splitlines():
            line = line.strip()
            bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
            kind = "ul" if bullet else "ol" if numbered else "p"
            item = (bullet or numbered)["item"] if kind != "p" else line
            if runs and runs[-1][0] == kind:
                runs[-1][1].append((item, numbered))
            else:
                runs.append((kind, [(item, numbered)]))
        for kind, items in runs:
            if kind == "p":
                blocks.append(f"<p>{_inline_html(' '.join(item for item, _ in items))}</p>")
                continue
            first = items[0][1]
            start = f' start="{first["number"]}"' if first and first["number"] != "1" else ""
            lis = "".join(f"<li>{_inline_html(item)}</li>" for item, _ in items)
            blocks.append(f"<{kind}{start}>{lis}</{kind}>")
    return "".join(blocks)


def _rng(kind: str, seed: int) -> np.random.Generator:
    # Seeds derive from readable strings, so two kinds with one seed differ.
    return np.random.default_rng([check_seed(seed), *kind.encode()])


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
    question = (
        f"The VM's memslots (every range half-open, `[start, end)`):\n\n{_slot_list(layout)}"
        f"\n\nOn **{kernel}**, the MMU notifier calls `{callback}` on hva range "
        f"[{start:#x}, {end:#x}). Does KVM take `mmu_lock` for write? "
        "(answer True or False; yes or no also work)"
    )
    where = "hits a memslot" if hit else "misses every memslot"
    explanation = f"The range {where}; {kernel}: {r.source}."
    return Exercise("takes_lock", check_seed(seed), question, bool(r.takes_lock), explanation)


class ZappedGfnsExercise(Exercise):
    """An :class:`Exercise` whose answer is one ``gfn_start, gfn_end`` pair per memslot.

    The answer is flattened, ``[gfn_start, gfn_end, ...]`` with ``gfn_end`` exclusive, in the
    order of :meth:`MemslotLayout.gfn_ranges`; :meth:`check` accepts the pairs in any order
    (each pair kept whole), as numbers or as text such as ``"0xec 0xef, 0xfffec 0xfffef"``.
    """

    def parse(self, text: str) -> list:
        """The pairs typed in ``text``, flattened; an odd count of numbers is refused."""
        numbers = _parse(text, [])
        if len(numbers) % 2:
            raise ValueError(
                f"type one gfn_start gfn_end pair per memslot (an even count of numbers); "
                f"got {len(numbers)}"
            )
        return numbers

    def _matches(self, answer) -> bool:
        numbers = _normalise(list(answer)) if isinstance(answer, list | tuple) else None
        if numbers is None or len(numbers) % 2:
            return False
        return _pairs(numbers) == _pairs(_normalise(self.answer))

    def _shown(self) -> str:
        return " ".join(str(x) for x in self.answer)


def _pairs(numbers: list) -> list:
    """``[a, b, c, d]`` as the sorted pairs ``[(a, b), (c, d)]``: one per memslot."""
    return sorted(zip(numbers[::2], numbers[1::2], strict=True))


def _slot_list(layout: MemslotLayout, *, gfns: bool = False) -> str:
    """The memslots as a Markdown list: id, address space, (gfns,) hva range."""
    return "\n".join(
        f"- slot {s.slot} (as_id {s.as_id}): "
        + (f"gfn [{s.base_gfn:#x}, {s.base_gfn + s.npages:#x}) at " if gfns else "")
        + f"hva [{s.hva_start:#x}, {s.hva_end:#x})"
        for s in layout
    )


def zapped_gfns(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Which gfns does ``invalidate_range_start`` on this hva range zap, in every memslot?

    The range starts inside one memslot, but KVM zaps it in every slot that maps any of its
    pages: an alias in the same address space (the q35 BIOS: ``isa-bios`` and ``pc.bios``) or in
    the other one (SMM, ``as_id`` 1). The question lists every memslot with its address space,
    gfns and hvas, and asks for all of them.

    Returns
    -------
    ZappedGfnsExercise
        Answer: ``[gfn_start, gfn_end, ...]``, one pair per touched memslot (end exclusive), in
        the order of :meth:`MemslotLayout.gfn_ranges`; any order of the pairs is accepted.

    Examples
    --------
    >>> q = zapped_gfns(seed=1)
    >>> q.answer, q.check("0x4f 0x53")[0]
    ([79, 83], True)
    """
    layout = q35_512m_layout() if layout is None else layout
    rng = _rng("zapped_gfns", seed)
    slot = layout.slots[rng.integers(len(layout))]
    start = slot.hva_start + int(rng.integers(slot.size_bytes))
    end = start + int(rng.integers(1, 5 * PAGE_SIZE))
    ranges = layout.gfn_ranges(start, end)
    answer = [x for g in ranges for x in (g.gfn_start, g.gfn_end)]
    question = (
        f"The VM's memslots (every range half-open, `[start, end)`; as_id 0 is normal memory, "
        f"as_id 1 the SMM address space):\n\n{_slot_list(layout, gfns=True)}\n\nThe MMU "
        f"notifier calls `invalidate_range_start` on hva [{start:#x}, {end:#x}), which begins "
        f"inside slot {slot.slot}. Which guest frames does KVM zap, in **every** memslot the "
        "range touches (any slot, in either address space)?\n\nAnswer with one "
        "`gfn_start gfn_end` pair per memslot touched, `gfn_end` exclusive (the first gfn not "
        "zapped), numbers in decimal or `0x` hex: e.g. `0x10 0x12` if gfns 0x10 and 0x11 of "
        "one slot are zapped. Two slots touched make two pairs, in any order, e.g. "
        "`16 18 4096 4098`; a slot of each address space counts, so an hva mapped in as_id 0 "
        "and as_id 1 makes two pairs even if their gfns are equal."
    )
    explanation = (
        "__kvm_handle_hva_range walks every memslot of both address spaces, clips the range "
        "to each slot it overlaps, converts the start with hva_to_gfn_memslot and the end "
        "rounded up to a page, so every page the range touches is zapped: "
        + ", ".join(
            f"[{g.gfn_start:#x}, {g.gfn_end:#x}) in slot {g.slot} (as_id {g.as_id})" for g in ranges
        )
        + "."
    )
    return ZappedGfnsExercise("zapped_gfns", check_seed(seed), question, answer, explanation)


# What the lock-order questions (grant_order, reader_wait) state about time and ties: the rules
# rwlock.replay follows (its module docstring), so a right answer is never a matter of luck.
_TIE_RULES = (
    "Times are whole µs. A request granted at t holds `mmu_lock` until t + its hold, and "
    "releases it at that instant. **Ties**: at one instant every release happens before any "
    "arrival; requests arriving at the same instant arrive in request order (lowest number "
    "first); a request that a release lets in is granted at that same instant."
)
_POLICY_RULES = {
    "qrwlock": "the kernel's fair rwlock of `kernel/locking/qrwlock.c`, as in chapter 03",
    "reader-pref": "a reader-preferring rwlock: a reader enters unless a writer holds the "
    "lock; a writer enters only when nobody holds the lock and no writer queues ahead of it; "
    "writers queue in arrival order, and when a writer leaves, every waiting reader enters "
    "before the next writer",
    "spinlock": "a spinlock: one holder at a time, readers included, in arrival order",
}


def _request_lines(arrival, is_writer, hold) -> str:
    return "\n".join(
        f"- request {i}: {'writer (notifier)' if w else 'reader (vCPU fault)'} arrives at "
        f"t={a} µs, holds {h} µs"
        for i, (a, w, h) in enumerate(zip(arrival, is_writer, hold, strict=True))
    )


def grant_order(seed: int = 0, policy: str = "qrwlock", n: int = 6) -> Exercise:
    """At what times does ``policy`` grant these requests? Answer: the list of grant times.

    The question states the tie rules :func:`kvmviz.rwlock.replay` follows (a release before an
    arrival at one instant; arrival order, then request index), and for ``reader-pref`` and
    ``spinlock`` the policy's rules; the answer is :func:`~kvmviz.rwlock.replay`'s grants.

    Parameters
    ----------
    seed : int
    policy : {"qrwlock", "reader-pref", "spinlock"}
    n : int
        Number of requests.

    Examples
    --------
    >>> q = grant_order(seed=0)
    >>> q.answer, q.check("3, 8, 9, 9, 9, 12")[0]
    ([3, 8, 9, 9, 9, 12], True)
    """
    if policy not in _POLICY_RULES:
        raise ValueError(f"policy = {policy!r}: expected one of {', '.join(_POLICY_RULES)}")
    n = check_int(n, "n", minimum=2)
    rng = _rng("grant_order", seed)
    arrival = np.sort(rng.integers(0, 12, n))
    is_writer = rng.random(n) < 0.35
    is_writer[rng.integers(1, n)] = True  # at least one writer, not always first
    hold = rng.integers(1, 6, n)
    grants = replay(arrival, is_writer, hold, policy=policy).astype(int).tolist()
    question = (
        f"Under **{policy}** ({_POLICY_RULES[policy]}), at what time is each request granted "
        f"`mmu_lock`?\n\n{_request_lines(arrival, is_writer, hold)}\n\n{_TIE_RULES}\n\n"
        f"Answer with the {n} grant times in request order, in µs, separated by spaces or "
        "commas, e.g. `0 3 3 7 ...`."
    )
    explanation = {
        "qrwlock": "qrwlock: a reader enters at once only if no writer holds or waits; a "
        "waiting writer blocks every newer reader until the readers inside have left.",
        "reader-pref": "reader-pref: a reader enters unless a writer holds; writers wait "
        "until no reader is inside.",
        "spinlock": "spinlock: one holder at a time, first come first served.",
    }[policy] + f" Grants: {grants}."
    return Exercise(f"grant_order/{policy}", check_seed(seed), question, grants, explanation)


def reader_wait(seed: int = 0, policy: str = "qrwlock") -> Exercise:
    """How long does one reader wait for ``mmu_lock``? Answer: its wait, µs (an integer).

    The scene of chapter 03: one or two readers (vCPU page faults) inside, one writer (a
    notifier) arriving while they hold, then readers arriving after the writer. The question
    asks about one of the late readers and states the tie rules (a release before an arrival
    at one instant; arrival order, then request index); the answer is its grant time from
    :func:`kvmviz.rwlock.replay` minus its arrival.

    Parameters
    ----------
    seed : int
    policy : {"qrwlock", "reader-pref", "spinlock"}

    Examples
    --------
    >>> q = reader_wait(seed=0)
    >>> q.check(q.answer)[0]
    True
    """
    if policy not in _POLICY_RULES:
        raise ValueError(f"policy = {policy!r}: expected one of {', '.join(_POLICY_RULES)}")
    rng = _rng("reader_wait", seed)
    n_before, n_after = int(rng.integers(1, 3)), int(rng.integers(2, 4))
    before = np.sort(rng.integers(0, 3, n_before))
    # The writer arrives while every early reader is still inside.
    hold_before = rng.integers(6, 12, n_before)
    writer_at = int(before.max()) + int(rng.integers(1, 4))
    after = np.sort(writer_at + rng.integers(1, 10, n_after))
    arrival = np.concatenate([before, [writer_at], after]).astype(int)
    is_writer = np.zeros(len(arrival), dtype=bool)
    is_writer[n_before] = True
    hold = np.concatenate([hold_before, rng.integers(1, 4, 1), rng.integers(1, 7, n_after)])
    hold = hold.astype(int)
    grants = replay(arrival, is_writer, hold, policy=policy)
    asked = n_before + 1 + int(rng.integers(n_after))
    wait = round(float(grants[asked] - arrival[asked]))
    question = (
        f"Under **{policy}** ({_POLICY_RULES[policy]}), how long does request {asked} (a "
        f"reader) wait for `mmu_lock`, from its arrival to its grant?\n\n"
        f"{_request_lines(arrival, is_writer, hold)}\n\n{_TIE_RULES}\n\n"
        "Answer in µs, a whole number, e.g. `7` (`0` if it enters at once)."
    )
    rule_text = {
        "qrwlock": "qrwlock: the writer finds readers inside, sets _QW_WAITING and waits for "
        "them holding wait_lock (queued_write_lock_slowpath); a reader arriving meanwhile sees "
        "the writer bits and queues on wait_lock behind it (queued_read_lock_slowpath).",
        "reader-pref": "reader-pref: a reader enters unless a writer holds the lock.",
        "spinlock": "spinlock: one holder at a time, first come first served.",
    }[policy]
    w = n_before
    explanation = (
        f"{rule_text} The writer (request {w}) arrives at t={arrival[w]}, is granted at "
        f"t={grants[w]:g} and leaves at t={grants[w] + hold[w]:g}; request {asked} arrives at "
        f"t={arrival[asked]} and is granted at t={grants[asked]:g}: it waits {wait} µs."
    )
    return Exercise(f"reader_wait/{policy}", check_seed(seed), question, wait, explanation)


# The primary-MMU operations of chapter 02, each with the event kind it fires
# (kvmviz.notifiers.EVENT_KINDS) and the mm function that fires it (docs/kernel.md §1.2, §1.6).
_CALLBACK_ALIASES = {"start": "invalidate_range_start", "end": "invalidate_range_end"}
_OPERATIONS = (
    (
        "munmap",
        "The VMM `munmap`s {npages} pages of its own heap at hva {hva:#x}.",
        "pair",
        "unmap_vmas() (mm/memory.c) wraps the whole range in one "
        "mmu_notifier_invalidate_range_start()/_end() pair around the zap",
    ),
    (
        "madvise",
        "The VMM calls `madvise(MADV_DONTNEED)` on {npages} pages of guest RAM at hva {hva:#x} "
        "(a balloon giving memory back to the host).",
        "pair",
        "zap_page_range() (mm/memory.c) wraps the zap of each VMA in a start/end pair",
    ),
    (
        "migration",
        "NUMA balancing migrates the page of guest RAM at hva {hva:#x} to another node.",
        "pair",
        "try_to_unmap_one() with TTU_MIGRATION (mm/rmap.c) replaces the PTE by a migration "
        "entry between start and end; remove_migration_pte() (mm/migrate.c) later installs the "
        "new page with a plain set_pte_at(), which notifies nobody",
    ),
    (
        "ksm",
        "KSM finds that the page of guest RAM at hva {hva:#x} is identical to a page in its "
        "stable tree and maps the KSM page in its place (`replace_page()`).",
        "move",
        "replace_page() (mm/ksm.c) calls set_pte_at_notify(), which fires change_pte, between "
        "start and end; 6bdb913f0a70 (v3.7) put every set_pte_at_notify() inside such a "
        "bracket (a whole merge is two brackets: write_protect_page() makes one first)",
    ),
    (
        "cow",
        "The guest writes to its page at hva {hva:#x}, which KSM had merged: the host breaks "
        "the sharing by giving it a private copy (copy-on-write).",
        "move",
        "wp_page_copy() (mm/memory.c) installs the copy with set_pte_at_notify() between start "
        "and end (6bdb913f0a70)",
    ),
    (
        "reclaim",
        "Page reclaim checks whether the page of guest RAM at hva {hva:#x} was referenced "
        "recently.",
        "clear_flush_young",
        "page_referenced_one() (mm/rmap.c) calls ptep_clear_flush_young_notify(), a single "
        "unpaired callback",
    ),
    (
        "page_idle",
        "A tool marks the page of guest RAM at hva {hva:#x} idle through "
        "`/sys/kernel/mm/page_idle/bitmap`.",
        "clear_young",
        "page_idle_clear_pte_refs_one() (mm/page_idle.c) calls ptep_clear_young_notify(), a "
        "single unpaired callback without TLB flush",
    ),
    (
        "khugepaged",
        "khugepaged asks whether the page of guest RAM at hva {hva:#x} was accessed recently, "
        "before collapsing its neighbourhood into a huge page.",
        "test_young",
        "khugepaged_scan_pmd() (mm/khugepaged.c) calls mmu_notifier_test_young(), a single "
        "unpaired callback",
    ),
)


class CallbackOrderExercise(Exercise):
    """An :class:`Exercise` whose answer is a sequence of callback names.

    :meth:`check` accepts a list or a string such as ``"start, change_pte, end"``: names may be
    separated by commas, spaces or arrows, and ``start`` / ``end`` stand for
    ``invalidate_range_start`` / ``invalidate_range_end``.
    """

    def check(self, answer) -> tuple[bool, str]:
        """Whether ``answer`` names the right callbacks in the right order, and why."""
        right = _callback_sequence(answer) == tuple(self.answer)
        verdict = "Right!" if right else f"Not quite: the answer is {' -> '.join(self.answer)}."
        return right, f"{verdict} {self.explanation}"

    def reveal(self) -> str:
        """The answer with its explanation."""
        return f"Answer: {' -> '.join(self.answer)}. {self.explanation}"


def _callback_sequence(answer) -> tuple[str, ...]:
    if answer is None:
        return ()
    if isinstance(answer, str):
        for separator in ("→", "->", ",", ";"):
            answer = answer.replace(separator, " ")
        answer = answer.split()
    names = (str(name).strip().lower().removeprefix(".") for name in answer)
    return tuple(_CALLBACK_ALIASES.get(name, name) for name in names)


def callback_order(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Which callbacks does KVM see for this operation of the host, in what order?

    The answer is the callback sequence of the operation's event kind in
    :data:`kvmviz.notifiers.EVENT_KINDS` (a start/end pair, a page move start -> change_pte ->
    end, or one unpaired aging call); the explanation names the mm function that fires it and
    which of the callbacks take ``mmu_lock`` on each kernel (:func:`kvmviz.kernels.rule`).

    Parameters
    ----------
    seed : int
    layout : MemslotLayout, optional
        The VM's memslots; default :func:`kvmviz.presets.q35_512m_layout`.

    Returns
    -------
    CallbackOrderExercise
        Answer: a tuple of callback names, e.g. ``("invalidate_range_start",
        "invalidate_range_end")``; :meth:`~CallbackOrderExercise.check` also takes
        ``"start, end"``.

    Examples
    --------
    >>> q = callback_order(seed=0)
    >>> q.check(" -> ".join(q.answer))[0]
    True
    """
    from .notifiers import EVENT_KINDS

    layout = q35_512m_layout() if layout is None else layout
    rng = _rng("callback_order", seed)
    name, text, kind, source = _OPERATIONS[rng.integers(len(_OPERATIONS))]
    npages = int(rng.integers(1, 65)) if kind == "pair" else 1
    if name == "munmap":
        hva = VMM_HEAP[0] + int(rng.integers(1 << 16)) * PAGE_SIZE
    else:
        ram = [s for s in layout if s.as_id == 0 and not s.flags & 0x2]  # 0x2: read-only ROM
        slot = ram[rng.integers(len(ram))]
        hva = slot.hva_start + int(rng.integers(max(1, slot.npages - npages + 1))) * PAGE_SIZE
    hit = layout.hits(hva, hva + npages * PAGE_SIZE)
    answer = EVENT_KINDS[kind]
    question = (
        f"On a Linux v5.13 host: {text.format(npages=npages, hva=hva)}\n\nWhich MMU-notifier "
        "callbacks does KVM see, "
        "in what order? Name each callback once per call, in the order KVM receives them, "
        "separated by commas, spaces or arrows (`->`); `start` and `end` are short for "
        "`invalidate_range_start` and `invalidate_range_end`."
    )
    locks = "; ".join(
        f"{kernel}: "
        + (", ".join(cb for cb in answer if rule(kernel, cb, hit).takes_lock) or "none")
        for kernel in KERNELS
    )
    where = "hits a memslot" if hit else "misses every memslot"
    explanation = (
        f"{source}. KVM sees every callback, hit or miss: its hit test runs inside each one. "
        f"This range {where}; the callbacks that take mmu_lock for write: {locks} "
        "(kvmviz.kernels.rule)."
    )
    return CallbackOrderExercise("callback_order", check_seed(seed), question, answer, explanation)


def _one_event_hold_us(scenario, kernel: str, kind: str, hva: int, callback: str) -> float:
    """Write hold of ``callback`` in one ``kind`` event at ``hva`` (a page), by the engine."""
    import pandas as pd

    from .engine import simulate
    from .notifiers import stream_from_callbacks

    stream = stream_from_callbacks(
        pd.DataFrame(
            {"t_us": [0.0], "kind": [kind], "hva_start": [hva], "hva_end": [hva + PAGE_SIZE]}
        )
    )
    run = simulate(scenario, kernel, seed=0, stream=stream)
    rows = run.notifiers[run.notifiers["callback"] == callback]
    return float(rows["hold_us"].iloc[0])


# (kernel, callback, event kind) of the spurious callbacks that hold mmu_lock while they walk.
_WALKING_MISSES = (
    ("v5.12", "invalidate_range_start", "pair"),
    ("v5.12", "clear_flush_young", "clear_flush_young"),
    ("v5.13", "invalidate_range_start", "pair"),
)


@functools.lru_cache(maxsize=1)
def _many_memslots() -> tuple:
    """The 32,764 slots of ``many_memslots_layout``; its first n are ``many_memslots_layout(n)``.

    Building the slots is what costs (each is validated), so it is done once.
    """
    from .presets import many_memslots_layout

    return many_memslots_layout(32764).slots


def memslot_walk_threshold(seed: int = 0) -> Exercise:
    """From how many memslots on does one spurious callback hold ``mmu_lock`` longer than X µs?

    The memslots are those of :func:`kvmviz.presets.many_memslots_layout` (2 MiB each), walked
    linearly as up to v5.16; the callback misses them all (a page of the VMM's heap). Answer:
    the smallest number of memslots, an ``int`` in ``[1, 32764]``, at which the callback's
    write hold, as :func:`kvmviz.simulate` computes it, exceeds the threshold.
    """
    from .scenario import Scenario

    rng = _rng("memslot_walk_threshold", seed)
    kernel, callback, kind = _WALKING_MISSES[rng.integers(len(_WALKING_MISSES))]
    # One walk of 32,764 slots takes 59 µs, and v5.12 walks twice: every threshold is reached.
    thresholds = (5, 10, 20, 50, 100) if kernel == "v5.12" else (2, 5, 10, 20, 50)
    threshold_us = thresholds[rng.integers(len(thresholds))]
    base = Scenario(n_vcpus=1, duration_us=1.0, memslot_lookup="linear")
    hva = VMM_HEAP[0] + int(rng.integers(1 << 16)) * PAGE_SIZE
    holds: dict[int, float] = {}

    def hold_us(n_slots: int) -> float:
        if n_slots not in holds:
            layout = MemslotLayout(_many_memslots()[:n_slots])
            scenario = base.replace(layout=layout)
            holds[n_slots] = _one_event_hold_us(scenario, kernel, kind, hva, callback)
        return holds[n_slots]

    def first_above(n_slots: int) -> bool:
        return hold_us(n_slots) > threshold_us and (
            n_slots == 1 or hold_us(n_slots - 1) <= threshold_us
        )

    # The hold grows with the slots walked. Guess from the slope between 1 and 2 slots, let
    # the engine confirm the guess (bisect if it does not: the engine has the last word).
    slope_us = hold_us(2) - hold_us(1)
    guess = int((threshold_us - hold_us(1)) // slope_us) + 2 if slope_us > 0 else 32764
    answer = min(max(guess, 1), 32764)
    if not first_above(answer):
        lo, hi = 1, 32764
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if hold_us(mid) > threshold_us else (mid + 1, hi)
        answer = lo
    if not first_above(answer):
        raise AssertionError(f"{threshold_us} µs is out of reach for {kernel} {callback}")
    question = (
        "A VM has *n* memslots, and the kernel finds the ones a notification touches by "
        "walking them all, one by one (`kvm_for_each_memslot`, up to v5.16). Visiting one "
        f"memslot costs {base.memslot_walk_ns:g} ns; taking and releasing an uncontended "
        f"`mmu_lock` costs {base.lock_op_us * 1000:g} ns.\n\nOn **{kernel}**, the VMM "
        f"triggers `{callback}` on a page of its own heap (hva {hva:#x}), which no memslot "
        "maps. From how many memslots on does this one callback hold `mmu_lock` for write for "
        f"**more than {threshold_us} µs**? The hold is the lock and unlock plus every walk of "
        "the memslots made under the lock (a kernel may walk them more than once: count each "
        "walk).\n\nAnswer with the smallest such *n*, a whole number of memslots, e.g. `1234`."
    )
    if kernel == "v5.12":
        walks = 2
        why = (
            f"On v5.12 kvm_mmu_notifier_{callback} takes the write lock first (KVM_MMU_LOCK, "
            "531810caa9f4) and only then looks for memslots, and x86 looked twice: for the "
            "rmaps (kvm_handle_hva_range) and again per TDP MMU root "
            "(kvm_tdp_mmu_handle_hva_range), until 3039bcc74498 (v5.13) merged the walks"
        )
    else:
        walks = 1
        why = (
            "On v5.13 invalidate_range_start still takes the lock before its one walk: its "
            "on_lock path 'does not yet support lock elision' (8931a454aea0); only 071064f14d87 "
            "(v5.15) moved the lock to the first hit"
        )
    explanation = (
        f"{why}. The hold is {base.lock_op_us * 1000:g} ns + {walks} x n x "
        f"{base.memslot_walk_ns:g} ns: {hold_us(answer):.4f} µs at n = {answer}, "
        f"{hold_us(answer - 1) if answer > 1 else 0:.4f} µs at n = {answer - 1}."
    )
    return Exercise("memslot_walk_threshold", check_seed(seed), question, answer, explanation)


def hit_flush_hold(seed: int = 0) -> Exercise:
    """How long does an ``invalidate_range_start`` that hits guest memory hold ``mmu_lock``?

    A page migration (an invalidate_range_start/end pair) on one 4 KiB page of guest RAM of the
    default :class:`~kvmviz.Scenario` layout (the 12 TiB q35 VM), on a VM of N vCPUs. Answer: the
    write hold of its ``invalidate_range_start`` as :func:`kvmviz.simulate` computes it,
    rounded to a whole µs (``int``); the same on every kernel, because no kernel elides a hit.
    """
    from .scenario import Scenario

    rng = _rng("hit_flush_hold", seed)
    kernel = KERNELS[rng.integers(len(KERNELS))]
    while True:  # a VM size whose answer is never near x.5: the rounding is no coin toss
        n_vcpus = 8 * int(rng.integers(2, 53))  # 16 .. 416
        scenario = Scenario(n_vcpus=n_vcpus, duration_us=1.0)
        ram = max((s for s in scenario.layout if s.as_id == 0), key=lambda s: s.npages)
        hva = ram.hva_start + int(rng.integers(ram.npages)) * PAGE_SIZE
        hold_us = _one_event_hold_us(scenario, kernel, "pair", hva, "invalidate_range_start")
        if abs(hold_us - round(hold_us)) < 0.25:
            break
    answer = round(hold_us)
    s = scenario
    zap_us = s.zap_base_us + s.zap_us_per_mib * PAGE_SIZE / 2**20
    question = (
        f"A VM with **{n_vcpus} vCPUs** runs **{kernel}**. The host migrates one 4 KiB page of "
        f"its RAM (hva {hva:#x}, in memslot {ram.slot}) to another NUMA node, so KVM gets "
        "`invalidate_range_start`, then `invalidate_range_end`, on that page.\n\nThe model's "
        "costs: lock + unlock "
        f"{s.lock_op_us * 1000:g} ns; {s.memslot_walk_ns:g} ns per memslot walked "
        f"({len(s.layout)} memslots); zapping {s.zap_base_us:g} µs + {s.zap_us_per_mib:g} µs "
        f"per MiB; one VM-wide TLB flush {s.tlb_flush_base_us:g} µs + "
        f"{s.tlb_flush_per_vcpu_us:g} µs x N for N <= 64 vCPUs, and past 64 vCPUs "
        f"`{s.tlb_flush_base_us:g} + {s.tlb_flush_per_vcpu_us:g} x 64 x (N/64)^"
        f"{s.tlb_flush_exponent:g}` µs. The vCPUs have faulted the page in, so the zap finds an "
        "SPTE.\n\nHow long does `invalidate_range_start` "
        "hold `mmu_lock` for write? Answer in µs, rounded to the nearest whole number, e.g. "
        "`12`."
    )
    explanation = (
        "The range hits a memslot, so every kernel takes the write lock "
        f"({rule(kernel, 'invalidate_range_start', True).source}), zaps the page's SPTEs "
        f"({zap_us:.3f} µs) and, since flush_on_ret is set for invalidate_range_start and the zap "
        "changed an SPTE, calls kvm_flush_remote_tlbs() before unlocking "
        "(__kvm_handle_hva_range: flush_on_ret && ret): "
        f"{s.tlb_flush_us:g} µs with {n_vcpus} vCPUs to reach. Hold: {hold_us:.3f} µs, "
        f"about {answer} µs, {s.tlb_flush_us / hold_us:.1%} of it the flush."
    )
    return Exercise("hit_flush_hold", check_seed(seed), question, answer, explanation)


@dataclass(frozen=True)
class RetryCase:
    """The inputs of one :func:`must_retry` question.

    Attributes
    ----------
    kernel : str
    hva : int
        The page the vCPU faults on (page aligned, in guest RAM).
    seq : int
        The ``mmu_notifier_seq`` it sampled; ``mmu_notifier_count`` was 0 then.
    callbacks : tuple of (str, int, int)
        The notifier callbacks that ran between the sample and the check, in order:
        ``(callback, hva_start, hva_end)``, end exclusive (one page for ``change_pte`` and
        ``test_young``, which carry a single address).
    """

    kernel: str
    hva: int
    seq: int
    callbacks: tuple


def retry_check(
    kernel: str, layout: MemslotLayout, hva: int, seq: int, callbacks
) -> tuple[bool, list[str]]:
    """Replay notifier callbacks on ``mmu_notifier_count`` / ``seq``, then check one fault.

    Each callback changes the counters as :func:`kvmviz.kernels.rule` says for ``kernel`` and
    for whether its range hits a memslot of ``layout``; a start that takes ``count`` from 0 to 1
    sets the invalidated range, later ones widen it to cover theirs (``kvm_inc_notifier_count``,
    4a42d848db95). Then ``mmu_notifier_retry_hva(kvm, seq, hva)``: retry if ``count != 0`` and
    ``hva`` lies in the range, or if ``seq`` moved (docs/kernel.md §3.2).

    Parameters
    ----------
    kernel : {"v5.12", "v5.13", "v5.15"}
    layout : MemslotLayout
    hva : int
        The faulting hva.
    seq : int
        The ``mmu_notifier_seq`` the fault sampled, with ``mmu_notifier_count`` 0 at the time.
    callbacks : iterable of (str, int, int)
        ``(callback, hva_start, hva_end)`` in the order they ran.

    Returns
    -------
    (bool, list of str)
        Whether the fault must retry, and one line per step saying why.

    Examples
    --------
    >>> from kvmviz.presets import VMM_HEAP, q35_512m_layout
    >>> heap = VMM_HEAP[0]
    >>> pair = [("invalidate_range_start", heap, heap + 4096),
    ...         ("invalidate_range_end", heap, heap + 4096)]
    >>> [retry_check(k, q35_512m_layout(), 0x7F6FFBF05000, 7, pair)[0] for k in KERNELS]
    [True, True, False]
    """
    count, lo, hi, now = 0, 0, 0, int(seq)
    lines = []
    for i, (callback, start, end) in enumerate(callbacks, start=1):
        start, end = int(start), int(end)
        hit = layout.hits(start, end)
        effect = rule(kernel, callback, hit)
        changes = []
        if effect.count_delta > 0:
            lo, hi = (start, end) if count == 0 else (min(lo, start), max(hi, end))
            count += effect.count_delta
            changes.append(f"count -> {count}, range [{lo:#x}, {hi:#x})")
        if effect.bumps_seq:
            now += 1
            changes.append(f"seq -> {now}")
        if effect.count_delta < 0:
            count += effect.count_delta
            changes.append(f"count -> {count}")
        lock = "takes mmu_lock" if effect.takes_lock else "skips mmu_lock"
        lines.append(
            f"{i}. {callback} ({'hit' if hit else 'miss'}): {lock}, "
            f"{', '.join(changes) or 'counters unchanged'} [{effect.source}]."
        )
    in_range = count != 0 and lo <= int(hva) < hi
    moved = now != int(seq)
    if count == 0:
        ranged = "count is 0, so the range is not looked at"
    else:
        where = "contains" if in_range else "does not contain"
        ranged = f"count is {count} and the range [{lo:#x}, {hi:#x}) {where} the hva"
    seq_text = f"seq is {now}, {'not ' if moved else ''}the {int(seq)} the fault sampled"
    verdict = "retry" if in_range or moved else "install the SPTE"
    lines.append(f"mmu_notifier_retry_hva: {ranged}; {seq_text}: {verdict}.")
    return in_range or moved, lines


_START, _END = "invalidate_range_start", "invalidate_range_end"


def _must_retry_case(seed: int, layout: MemslotLayout) -> RetryCase:
    """Draw the kernel, the fault and the callbacks of :func:`must_retry`."""
    rng = _rng("must_retry", seed)
    kernel = KERNELS[rng.integers(len(KERNELS))]
    ram = max((s for s in layout if s.as_id == 0), key=lambda s: s.npages)
    fault_page = int(rng.integers(16, ram.npages - 16))
    hva = ram.hva_start + fault_page * PAGE_SIZE

    def where(npages: int) -> int:
        # A range on the faulting page, elsewhere in guest RAM, or on the VMM's own heap.
        target = rng.choice(["fault", "guest", "heap"], p=[0.3, 0.35, 0.35])
        if target == "fault":
            return hva - int(rng.integers(npages)) * PAGE_SIZE
        if target == "guest":
            page = int(rng.integers(ram.npages - npages))
            while page <= fault_page < page + npages:
                page = int(rng.integers(ram.npages - npages))
            return ram.hva_start + page * PAGE_SIZE
        return VMM_HEAP[0] + int(rng.integers(1 << 16)) * PAGE_SIZE

    events = []
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["pair", "move", "aging"], p=[0.4, 0.25, 0.35])
        npages = 1 if kind != "pair" else int(rng.integers(1, 17))
        start = where(npages)
        end = start + npages * PAGE_SIZE
        if kind == "pair":
            events.append([(_START, start, end), (_END, start, end)])
        elif kind == "move":  # KSM, COW: change_pte, always bracketed since 6bdb913f0a70
            page = (start, start + PAGE_SIZE)
            events.append([(_START, *page), ("change_pte", *page), (_END, *page)])
        else:
            aging = ["clear_flush_young", "clear_young", "test_young"][rng.integers(3)]
            single = aging == "test_young"
            events.append([(aging, start, start + PAGE_SIZE if single else end)])
    order: list = []
    for event in events:
        previous_end = len(order) - 1
        if order and order[-1][0] == _END and len(event) > 1 and rng.random() < 0.35:
            order[previous_end:previous_end] = event  # nested inside the previous invalidation
        else:
            order.extend(event)
    if len(order) > 1 and rng.random() < 0.5:  # the vCPU checks before the last ones run
        order = order[: int(rng.integers(1, len(order)))]
    return RetryCase(kernel, hva, int(rng.integers(1, 100)), tuple(order))


def must_retry(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Must this vCPU fault retry? Answer: ``True`` or ``False``.

    A vCPU samples ``mmu_notifier_seq`` and goes to resolve the pfn; meanwhile a few notifier
    callbacks run (start/end pairs, ``set_pte_at_notify()`` brackets with a ``change_pte``,
    aging calls; on guest memory or the VMM's heap; possibly nested, possibly still in flight);
    then it takes ``mmu_lock`` and calls ``mmu_notifier_retry_hva()``. The answer is
    :func:`retry_check` on the drawn case (the kernel rules of :func:`kvmviz.kernels.rule`),
    explained step by step.

    Parameters
    ----------
    seed : int
    layout : MemslotLayout, optional
        Default :func:`kvmviz.presets.q35_512m_layout`; the fault falls in its biggest slot of
        address space 0.

    Examples
    --------
    >>> q = must_retry(seed=0)
    >>> q.check(q.answer)[0]
    True
    """
    layout = q35_512m_layout() if layout is None else layout
    case = _must_retry_case(seed, layout)
    answer, lines = retry_check(case.kernel, layout, case.hva, case.seq, case.callbacks)
    steps = "\n".join(
        f"{i}. `{cb}` at hva {start:#x} (its page: [{start:#x}, {end:#x}))"
        if cb in ("change_pte", "test_young")
        else f"{i}. `{cb}` on hva [{start:#x}, {end:#x})"
        for i, (cb, start, end) in enumerate(case.callbacks, start=1)
    )
    question = (
        f"On **{case.kernel}**, the VM's memslots are (every range half-open, `[start, end)`):"
        f"\n\n{_slot_list(layout)}\n\n"
        f"A vCPU faults on hva {case.hva:#x}. It samples `mmu_notifier_seq` = {case.seq} (no "
        "invalidation in flight: `mmu_notifier_count` = 0) and resolves the pfn outside "
        f"`mmu_lock`. Meanwhile the MMU notifier calls, in this order:\n\n{steps}\n\n"
        "and nothing else (a start whose end is not listed is still in flight). Then the vCPU "
        f"takes `mmu_lock` and calls `mmu_notifier_retry_hva(kvm, {case.seq}, {case.hva:#x})`. "
        "Must the fault retry? (answer True or False; yes or no also work)"
    )
    return Exercise("must_retry", check_seed(seed), question, bool(answer), "\n".join(lines))
