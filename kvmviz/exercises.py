"""Seeded exercises with answers you can check, the way OSTEP's simulators offer ``-c``.

The same seed gives the same problem to a whole room. Each exercise prints its question with
``?`` in place of the answer; ``check(answer)`` says whether an answer is right and why;
``reveal()`` shows the answer. The answers come from the model itself (``kernels.rule``,
``MemslotLayout.gfn_ranges``, ``rwlock.replay``), never from a hand-written key.

Every generator lives here, and :data:`KINDS` names each with the one spelling the command line
and the notebooks share: ``quiz("grant-order", seed=2)`` is ``kvmviz quiz grant-order -s 2``,
and an exercise's :attr:`~Exercise.kind` is that same key. The oracles the chapters show beside
their exercises live here too: :func:`retry_check` and :func:`retry_table`
(``mmu_notifier_retry_hva`` on a list of callbacks or on every fault of a run) and
:func:`lock_states` (``mmu_lock`` instant by instant).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._shared._checks import check_int, check_seed
from .inputs import presets
from .inputs.kernels import CALLBACKS, KERNELS, rule
from .inputs.memslots import PAGE_SIZE, MemslotLayout
from .inputs.presets import VMM_HEAP, q35_512m_layout
from .inputs.scenario import Scenario
from .model.classify import Counters, callbacks, mmu_notifier_retry_hva
from .model.rwlock import replay

__all__ = [
    "KINDS",
    "QUEUE_SCENE",
    "RETRY_SCENE",
    "CallbackOrderExercise",
    "Exercise",
    "RetryCase",
    "ZappedGfnsExercise",
    "callback_order",
    "first_vcpus_above",
    "grant_order",
    "hit_flush_hold",
    "hit_or_miss",
    "ksm_hits",
    "lock_states",
    "memslot_walk_threshold",
    "mmu_notifier_retry_hva",
    "munmap_on_guest",
    "must_retry",
    "queued_behind",
    "quiz",
    "reader_wait",
    "retry_check",
    "retry_table",
    "takes_lock_question",
    "trace_count",
    "v513_locks",
    "zapped_gfns",
]


@dataclass
class Exercise:
    """One generated question.

    Attributes
    ----------
    kind : str
        The generator's key in :data:`KINDS`, spelled as ``kvmviz quiz`` spells it
        (``"takes-lock"``, ``"grant-order"``, ...).
    seed : int
    question : str
        Markdown text of the question.
    answer : object
        The right answer (look only after trying!).
    explanation : str
        Why that is the answer, citing the kernel rule.
    options : dict
        The generator's options besides the seed that change the question (``policy`` for
        ``grant-order`` and ``reader-wait``): ``quiz(kind, seed, **options)`` asks it again.
    """

    kind: str
    seed: int
    question: str
    answer: object = field(repr=False)
    explanation: str = field(repr=False)
    options: dict = field(default_factory=dict, repr=False)

    @property
    def command(self) -> str:
        """The command line that prints this question: ``kvmviz quiz KIND -s SEED [...]``.

        Examples
        --------
        >>> grant_order(seed=2, policy="reader-pref").command
        'kvmviz quiz grant-order -s 2 --policy reader-pref'
        """
        extra = "".join(f" --{name} {value}" for name, value in self.options.items())
        return f"kvmviz quiz {self.kind} -s {self.seed}{extra}"

    def _label(self) -> str:
        extra = "".join(f", {name} {value}" for name, value in self.options.items())
        return f"{self.kind}, seed {self.seed}{extra}"

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
        return f"**Exercise ({self._label()})**\n\n{self.question}"

    def __str__(self) -> str:
        return f"[{self._label()}] {self.question}"

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


def _rng(salt: str, seed: int) -> np.random.Generator:
    # Seeds derive from readable strings, so two kinds with one seed differ. The salts are the
    # generators' first names (underscored) and stay so: a seed keeps its question, and
    # docs/workshop.md keeps its answers.
    return np.random.default_rng([check_seed(seed), *salt.encode()])


def _case(salt: str, seed: int, n_cases: int) -> int:
    """The case a seed asks about, among ``n_cases``: one fixed shuffle of them, walked in turn.

    For a kind whose questions are few enough to list (the edges of a layout's memslots, the
    windows of a trace), seeds ``0 .. n_cases - 1`` ask ``n_cases`` different questions, and
    seed ``s`` asks what seed ``s % n_cases`` asks: two seeds give one question only if they
    are a multiple of ``n_cases`` apart. (Drawing with :func:`_rng` instead repeats a question
    among a hundred seeds as soon as the cases are a few hundred: the birthday problem.)

    Examples
    --------
    >>> sorted(_case("doc", s, 5) for s in range(5))
    [0, 1, 2, 3, 4]
    >>> _case("doc", 7, 5) == _case("doc", 2, 5)
    True
    """
    n_cases = check_int(n_cases, "n_cases", minimum=1)
    order = np.random.default_rng([*salt.encode()]).permutation(n_cases)
    return int(order[check_seed(seed) % n_cases])


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
    pages = int(rng.integers(1, 17))
    # change_pte and test_young carry one hva; the aging calls come one page (a PTE) at a time
    # (folio_referenced_one, damon_ptep_mkold): only a start/end pair spans several pages.
    end = start + PAGE_SIZE * (pages if callback.startswith("invalidate_range") else 1)
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
    return Exercise("takes-lock", check_seed(seed), question, bool(r.takes_lock), explanation)


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
    return ZappedGfnsExercise("zapped-gfns", check_seed(seed), question, answer, explanation)


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


def _policy(policy: str) -> dict:
    """The ``options`` of a lock-order exercise: the policy, unless it is the default qrwlock."""
    return {} if policy == "qrwlock" else {"policy": policy}


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
    ``spinlock`` the policy's rules; the answer is :func:`~kvmviz.rwlock.replay`'s grants. A
    scene where no request waits under some policy (every grant at its arrival) is drawn
    again, so one seed is one scene for every policy.

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
    while True:  # a scene where some request waits under every policy: never "at arrival"
        arrival = np.sort(rng.integers(0, 12, n))
        is_writer = rng.random(n) < 0.35
        is_writer[rng.integers(1, n)] = True  # at least one writer, not always first
        hold = rng.integers(1, 6, n)
        if all((replay(arrival, is_writer, hold, policy=p) > arrival).any() for p in _POLICY_RULES):
            break
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
    return Exercise("grant-order", check_seed(seed), question, grants, explanation, _policy(policy))


def reader_wait(seed: int = 0, policy: str = "qrwlock") -> Exercise:
    """How long does one reader wait for ``mmu_lock``? Answer: its wait, µs (an integer).

    The scene of chapter 03: one or two readers (vCPU page faults) inside, one writer (a
    notifier) arriving while they hold, then readers arriving after the writer. The question
    asks about one of the late readers, one that arrives before the writer leaves under every
    policy (a scene where it arrives later asks nothing about the writer, and is drawn again:
    one seed is one scene for every policy), and states the tie rules (a release before an
    arrival at one instant; arrival order, then request index); the answer is its grant time
    from :func:`kvmviz.rwlock.replay` minus its arrival.

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
    while True:  # until the reader asked about arrives before the writer leaves, on every lock
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
        asked = n_before + 1 + int(rng.integers(n_after))
        # A reader that arrives once the writer has left asks nothing about the writer: the
        # scene is drawn again (the same scene for every policy, so they can be compared).
        leaves = [replay(arrival, is_writer, hold, policy=p)[n_before] + hold[n_before]
                  for p in _POLICY_RULES]  # fmt: skip
        if arrival[asked] < min(leaves):
            break
    grants = replay(arrival, is_writer, hold, policy=policy)
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
    return Exercise("reader-wait", check_seed(seed), question, wait, explanation, _policy(policy))


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
    from .inputs.notifiers import EVENT_KINDS

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
    return CallbackOrderExercise("callback-order", check_seed(seed), question, answer, explanation)


def _one_event_hold_us(scenario, kernel: str, kind: str, hva: int, callback: str) -> float:
    """Write hold of ``callback`` in one ``kind`` event at ``hva`` (a page), from the engine's
    cost plan (:func:`kvmviz.engine.callback_costs`: what :func:`kvmviz.simulate` charges it,
    without simulating)."""
    from .inputs.notifiers import stream_from_callbacks
    from .model.engine import callback_costs

    stream = stream_from_callbacks(
        pd.DataFrame(
            {"t_us": [0.0], "kind": [kind], "hva_start": [hva], "hva_end": [hva + PAGE_SIZE]}
        )
    )
    costs = callback_costs(scenario, kernel, stream, seed=0)
    return float(costs.loc[costs["callback"] == callback, "hold_us"].iloc[0])


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
    from .inputs.presets import many_memslots_layout

    return many_memslots_layout(32764).slots


def memslot_walk_threshold(seed: int = 0) -> Exercise:
    """From how many memslots on does one spurious callback hold ``mmu_lock`` longer than X µs?

    The memslots are those of :func:`kvmviz.presets.many_memslots_layout` (2 MiB each), walked
    linearly as up to v5.16; the callback misses them all (a page of the VMM's heap). Answer:
    the smallest number of memslots, an ``int`` in ``[1, 32764]``, at which the callback's
    write hold, as :func:`kvmviz.simulate` computes it, exceeds the threshold.
    """
    from .inputs.scenario import Scenario

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
    return Exercise("walk-threshold", check_seed(seed), question, answer, explanation)


def hit_flush_hold(seed: int = 0) -> Exercise:
    """How long does an ``invalidate_range_start`` that hits guest memory hold ``mmu_lock``?

    A page migration (an invalidate_range_start/end pair) on one 4 KiB page of guest RAM of the
    default :class:`~kvmviz.Scenario` layout (the 12 TiB q35 VM), on a VM of N vCPUs. Answer: the
    write hold of its ``invalidate_range_start`` as :func:`kvmviz.simulate` computes it,
    rounded to a whole µs (``int``); the same on every kernel, because no kernel elides a hit.
    """
    from .inputs.scenario import Scenario

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
    return Exercise("flush-hold", check_seed(seed), question, answer, explanation)


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
    counters = Counters()
    counters.seq = int(seq)
    lines = []
    for i, (callback, start, end) in enumerate(callbacks, start=1):
        start, end = int(start), int(end)
        hit = layout.hits(start, end)
        effect = rule(kernel, callback, hit)
        changes = []
        # One callback under mmu_lock: count++ once granted, seq++ then count-- before release.
        counters.grant(effect.count_delta, start, end)
        if effect.count_delta > 0:
            changes.append(
                f"count -> {counters.count}, "
                f"range [{counters.range_start:#x}, {counters.range_end:#x})"
            )
        before = counters.count
        counters.release(effect.bumps_seq, effect.count_delta)
        if effect.bumps_seq:
            changes.append(f"seq -> {counters.seq}")
        if counters.count != before:
            changes.append(f"count -> {counters.count}")
        lock = "takes mmu_lock" if effect.takes_lock else "skips mmu_lock"
        lines.append(
            f"{i}. {callback} ({'hit' if hit else 'miss'}): {lock}, "
            f"{', '.join(changes) or 'counters unchanged'} [{effect.source}]."
        )
    count, lo, hi, now = counters.count, counters.range_start, counters.range_end, counters.seq
    retry = bool(mmu_notifier_retry_hva(count, lo, hi, int(hva), now, int(seq)))
    in_range = count != 0 and lo <= int(hva) < hi
    if count == 0:
        ranged = "count is 0, so the range is not looked at"
    else:
        where = "contains" if in_range else "does not contain"
        ranged = f"count is {count} and the range [{lo:#x}, {hi:#x}) {where} the hva"
    moved = now != int(seq)
    seq_text = f"seq is {now}, {'not ' if moved else ''}the {int(seq)} the fault sampled"
    verdict = "retry" if retry else "install the SPTE"
    lines.append(f"mmu_notifier_retry_hva: {ranged}; {seq_text}: {verdict}.")
    return retry, lines


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
    return Exercise("must-retry", check_seed(seed), question, bool(answer), "\n".join(lines))


RETRY_SCENE = presets.RETRY_VM
"""Chapter 05's tiny VM (section 2): three vCPUs on QEMU's 512 MiB q35 layout that fault all the
time, resolving a pfn in 10 µs on average, for 40 µs; 4 µs between a start and its end."""

_MUNMAP_PAGES = (1, 4, 16, 64)
_MUNMAP_ROOM_US = 18.0  # the latest munmap comes this long before the end of RETRY_SCENE


def _pairs_stream(*rows) -> pd.DataFrame:
    """A hand-made notification stream: ``(t_us, kind, hva_start, hva_end)`` per event."""
    from .inputs.notifiers import stream_from_callbacks

    frame = pd.DataFrame(list(rows), columns=["t_us", "kind", "hva_start", "hva_end"])
    return stream_from_callbacks(frame)


def _decimals(times, marks) -> int:
    """The fewest decimals (1 to 6) at which every time compares with every mark as it does
    unrounded: earlier, at the same instant, or later. A question that prints its times so
    reads the same order as the run."""
    times = np.asarray(times, dtype=float)[:, None]
    marks = np.asarray(marks, dtype=float)[None, :]
    truth = np.sign(times - marks)
    for decimals in range(1, 7):
        shown = np.sign(np.round(times, decimals) - np.round(marks, decimals))
        if (shown == truth).all():
            return decimals
    return 6


def munmap_on_guest(seed: int = 0) -> Exercise:
    """How many fault attempts retry when a ``munmap`` hits guest RAM? Answer: an ``int``.

    Chapter 05's exercise: the spurious ``munmap`` of section 2, moved onto guest memory. On
    :data:`RETRY_SCENE` with workload seed ``seed``, the seed draws a kernel, a vCPU and a
    size (1, 4, 16 or 64 pages); a first run without notifications says when each vCPU's first
    fault samples ``mmu_notifier_seq``; one start/end pair then invalidates that many pages
    from the drawn vCPU's page, 1 to 2 µs after the last sample (at the latest 18 µs before the
    end of the run, so the pair ends inside it). The answer is the number of
    attempts the engine sends back to the guest among those granted ``mmu_lock`` in the run's
    40 µs (:func:`retry_table`, which also says through which half of the check each one
    went).

    The question states everything the answer depends on, as the run has it: when each
    callback arrives, takes ``mmu_lock``, holds it and releases it (the end arrives
    ``invalidate_window_us`` after the start *released* the lock), when each counter moves
    (``count`` up at the start's grant, ``seq`` up then ``count`` down at the end's release),
    and every attempt of the 40 µs, retries included, with when it sampled ``seq`` and when it
    checked; times are printed with as many decimals as keep every sample and check on the
    same side of each counter change as in the run. Reasoning from the text alone (the two
    halves of ``mmu_notifier_retry_hva()``) gives the answer. Two simulations, one per run;
    the range hits a memslot, so its rule is the same on every kernel
    (:func:`kvmviz.classify.callbacks`) and so is the answer.

    Examples
    --------
    >>> q = munmap_on_guest(seed=2)
    >>> q.check(q.answer)[0]
    True
    """
    from .model.engine import simulate

    seed = check_seed(seed)
    rng = _rng("munmap_on_guest", seed)
    kernel = KERNELS[rng.integers(len(KERNELS))]
    npages = _MUNMAP_PAGES[rng.integers(len(_MUNMAP_PAGES))]
    quiet = simulate(RETRY_SCENE, kernel, seed=seed, stream=_pairs_stream())
    first = quiet.faults.groupby("vcpu").first()  # a vCPU may not fault in the 40 µs
    vcpu = int(first.index[rng.integers(len(first))])
    # After every first sample, but early enough that the pair ends inside the run's 40 µs
    # (the start holds about 5 µs, the end comes 4 µs after): else nothing would retry for
    # reasons that lie past the end of the run.
    latest = RETRY_SCENE.duration_us - _MUNMAP_ROOM_US
    t_munmap = float(min(np.floor(first["t_snapshot_us"].max()) + 2.0, latest))
    start = int(first.loc[vcpu, "hva"])
    end = start + npages * PAGE_SIZE
    stream = _pairs_stream((t_munmap, "pair", start, end))
    run = simulate(RETRY_SCENE, kernel, seed=seed, stream=stream)
    until = RETRY_SCENE.duration_us
    table = retry_table(run, until_us=until)
    answer = int(table["retried"].sum())
    layout = RETRY_SCENE.layout
    plan = callbacks(stream, layout, kernel).set_index("callback")
    on_start, on_end = plan.loc[_START], plan.loc[_END]
    cb = run.notifiers.set_index("callback")
    s_row, e_row = cb.loc[_START], cb.loc[_END]
    if not (s_row["locked"] and e_row["locked"]):
        raise AssertionError(f"a munmap on guest RAM must lock on {kernel}")
    count_up, seq_up = float(s_row["t_grant_us"]), float(e_row["t_release_us"])
    attempts = table.sort_values(["checks at (µs)", "vcpu"], kind="stable")
    marks = [count_up, seq_up]
    times = [*attempts["samples seq at (µs)"], *attempts["checks at (µs)"]]
    decimals = _decimals(times, marks)

    def t(x) -> str:  # every instant at one precision; a hold with its own three digits
        return f"{float(x):.{decimals}f}"

    hva_of = run.faults.loc[attempts.index, "hva"].to_numpy()
    lines = "\n".join(
        f"- vCPU {int(row['vcpu'])} (hva {int(h):#x}): samples `mmu_notifier_seq` at "
        f"{t(row['samples seq at (µs)'])} µs, checks at {t(row['checks at (µs)'])} µs"
        for (_, row), h in zip(attempts.iterrows(), hva_of, strict=True)
    )
    slots = ", ".join(str(g.slot) for g in layout.gfn_ranges(start, end))
    window = RETRY_SCENE.invalidate_window_us
    question = (
        f"Chapter 05's tiny VM (`kvmviz.exercises.RETRY_SCENE`, workload seed {seed}): "
        f"{RETRY_SCENE.n_vcpus} vCPUs on QEMU's 512 MiB q35 layout, faulting all the time. "
        f"On **{kernel}**, at {t_munmap:g} µs the host unmaps {npages} "
        f"page{'s' * (npages > 1)} of guest RAM starting at vCPU {vcpu}'s page, hva "
        f"[{start:#x}, {end:#x}) (in memslot {slots}). Before it, `mmu_notifier_seq` and "
        "`mmu_notifier_count` are both 0. Both callbacks take `mmu_lock` for write:\n\n"
        f"- `invalidate_range_start` arrives at {t(s_row['t_arrive_us'])} µs, takes "
        f"`mmu_lock` at {t(count_up)} µs and holds it {s_row['hold_us']:.3g} µs (the zap and "
        f"the TLB flush), until {t(s_row['t_release_us'])} µs. As it takes the lock, "
        f"`mmu_notifier_count` goes 0 -> 1 and the invalidated range is [{start:#x}, "
        f"{end:#x}).\n"
        f"- `invalidate_range_end` arrives {window:g} µs after the start released the lock, "
        f"at {t(e_row['t_arrive_us'])} µs, takes `mmu_lock` at {t(e_row['t_grant_us'])} µs "
        f"and holds it {e_row['hold_us']:.3g} µs, until {t(seq_up)} µs. As it releases the "
        "lock, `mmu_notifier_seq` goes 0 -> 1, then `mmu_notifier_count` 1 -> 0.\n\n"
        f"Every fault attempt that takes `mmu_lock` in the first {until:g} µs of this run "
        "(an attempt sent back to the guest faults again, and its retry is listed too), with "
        "when it sampled `mmu_notifier_seq` (before resolving the pfn, outside the lock) and "
        "when it called `mmu_notifier_retry_hva()` (as it took `mmu_lock`), in the order of "
        f"the checks:\n\n{lines}\n\n"
        "A counter that changes at the same instant as a sample or a check changes first. "
        "How many of these attempts must retry, i.e. are sent back to the guest? (a number)"
    )
    back = table[table["retried"]]
    who = "; ".join(
        f"vCPU {vcpu_} at {t(at)} µs ("
        + (
            "the range half: count is 1 and its hva is in the range"
            if in_range
            else f"seq alone: it sampled {sampled}, it is {now} now"
        )
        + ")"
        for vcpu_, at, in_range, sampled, now in zip(
            back["vcpu"],
            back["checks at (µs)"],
            back["hva in range"],
            back["seq sampled"],
            back["seq now"],
            strict=True,
        )
    )
    lock = "takes `mmu_lock`" if on_start.locked else "skips `mmu_lock`"
    why = (
        f"{answer} attempt{'s' * (answer != 1)} retry. The range hits slot {slots}, and a hit "
        f"counts on every kernel: on {kernel} the start {lock} and moves "
        f"`mmu_notifier_count` by {on_start.count_delta:+d} "
        f"({rule(kernel, _START, bool(on_start.hit)).source}), the end "
        f"{'bumps' if on_end.bumps_seq else 'leaves'} `mmu_notifier_seq` and moves the count by "
        f"{on_end.count_delta:+d} ({rule(kernel, _END, bool(on_end.hit)).source}); nothing is "
        f"elided, v5.15 included. An attempt retries if it checks while the count is 1 "
        f"({t(count_up)} to {t(seq_up)} µs) on an hva in the range, or if it sampled seq "
        f"before {t(seq_up)} µs and checks after. Sent back: {who or 'nobody'}. "
        "`kvmviz.exercises.retry_table(run, until_us=40)` on this run shows each check "
        "(chapter 05's `checks()`)."
    )
    return Exercise("munmap-on-guest", seed, question, answer, why)


def retry_table(run, until_us: float | None = None) -> pd.DataFrame:
    """Every fault attempt's ``mmu_notifier_retry_hva()``, rebuilt from the notifier counters.

    For each attempt: the ``mmu_notifier_seq`` it sampled (at ``t_snapshot_us``, before
    resolving the pfn), then, when it holds ``mmu_lock`` (``t_grant_us``), ``count``, whether
    its hva lies in the invalidated range, the ``seq`` then, and the verdict of
    :func:`mmu_notifier_retry_hva` on those values; the counters are
    :func:`kvmviz.metrics.notifier_counters`. Beside it, ``retried``: what the engine did. The
    two columns agree on every attempt of every run (the tests check it): chapter 05 reads a
    retry off this table.

    Parameters
    ----------
    run : Run
    until_us : float, optional
        Only the attempts granted ``mmu_lock`` before this time.

    Returns
    -------
    pandas.DataFrame
        ``vcpu, fault, retries so far, samples seq at (µs), seq sampled, checks at (µs), count,
        hva in range, seq now, must retry, retried``; one row per attempt, in ``run.faults``
        order.
    """
    from .stats.metrics import notifier_counters

    counters = notifier_counters(run)
    faults = run.faults if until_us is None else run.faults[run.faults["t_grant_us"] < until_us]
    times = counters["t_us"].to_numpy()

    def at(column: str, t: np.ndarray, dtype) -> np.ndarray:
        """The counter's value just after time ``t`` (0 before any change)."""
        values = np.concatenate([np.zeros(1, dtype), counters[column].to_numpy(dtype=dtype)])
        return values[np.searchsorted(times, t, side="right")]

    t_sample = faults["t_snapshot_us"].to_numpy(dtype=np.float64)
    t_check = faults["t_grant_us"].to_numpy(dtype=np.float64)
    hva = faults["hva"].to_numpy(dtype=np.uint64)
    count = at("count", t_check, np.int64)
    start, end = at("range_start", t_check, np.uint64), at("range_end", t_check, np.uint64)
    sampled, now = at("seq", t_sample, np.int64), at("seq", t_check, np.int64)
    return pd.DataFrame(
        {
            "vcpu": faults["vcpu"].to_numpy(),
            "fault": faults["fault"].to_numpy(),
            "retries so far": faults["retries"].to_numpy(),
            "samples seq at (µs)": t_sample,
            "seq sampled": sampled,
            "checks at (µs)": t_check,
            "count": count,
            "hva in range": (count != 0) & (start <= hva) & (hva < end),
            "seq now": now,
            "must retry": mmu_notifier_retry_hva(count, start, end, hva, now, sampled),
            "retried": faults["retry"].to_numpy(dtype=bool),
        },
        index=faults.index,
    )


def lock_states(run) -> pd.DataFrame:
    """The state of ``mmu_lock`` just after every arrival and every release of a run.

    Chapter 03's step-by-step table: at each instant a request arrives or a holder leaves,
    who arrives or leaves, who is inside, who waits (in FIFO order) and what the lock says
    (:func:`kvmviz.animate.queue_frames` at that instant); under ``qrwlock`` also the writer
    bits of ``cnts`` (``_QW_LOCKED`` while a writer is inside, ``_QW_WAITING`` while one waits
    at the head of the queue: ``kernel/locking/qrwlock.c``, docs/kernel.md §4.3).

    Parameters
    ----------
    run : Run
        Typically a scripted scene (:func:`kvmviz.engine.scripted_run`): every instant is a row.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``t_us``: ``what happens, inside, waiting (FIFO), the lock`` and, under
        ``qrwlock``, ``cnts writer bits``. vCPUs are named ``vCPU <n>``, notifiers
        ``notifier``; ``-`` stands for nobody.
    """
    from .views.animate import queue_frames

    lock = run.lock

    def named(rows) -> str:
        return ", ".join(
            "notifier" if h == "notifier" else f"vCPU {w}"
            for h, w in zip(rows["holder"], rows["who"], strict=True)
        )

    instants = sorted(set(lock["t_request_us"]) | set(lock["t_release_us"]))
    rows = []
    for t in instants:
        state = queue_frames(run, t, t + 1e-6, n_frames=1)[0]
        arrive = lock[lock["t_request_us"] == t]
        leave = lock[lock["t_release_us"] == t]
        happened = [f"{named(arrive)} arrives"] * (len(arrive) > 0)
        happened += [f"{named(leave)} leaves"] * (len(leave) > 0)
        row = {
            "t_us": t,
            "what happens": "; ".join(happened),
            "inside": named(state.holders) or "-",
            "waiting (FIFO)": named(state.waiters) or "-",
            "the lock": state.caption,
        }
        if run.policy == "qrwlock":
            row["cnts writer bits"] = (
                "_QW_LOCKED"
                if state.writer_inside
                else "_QW_WAITING"
                if state.head_writer is not None
                else "0"
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("t_us")


def _edge_ranges(layout: MemslotLayout) -> list[tuple[int, int]]:
    """Every range :func:`hit_or_miss` asks about, once each, in the layout's order.

    For each memslot edge (its first byte, its end), a start within six half pages before it to
    two after it, spanning one to four half pages: 9 x 4 ranges per edge. Two slots that touch
    share an edge, and a range near it is listed once.
    """
    ranges: dict[tuple[int, int], None] = {}
    for slot in layout.slots:
        for edge in (slot.hva_start, slot.hva_end):
            for offset in range(-6, 3):
                for length in range(1, 5):
                    start = edge + 0x800 * offset
                    ranges[start, start + 0x800 * length] = None
    return list(ranges)


def hit_or_miss(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Does a range near the edge of a memslot hit it? Answer: ``True`` or ``False``.

    The range starts within six half pages of a memslot's first or last byte and spans one to
    four half pages, so half-open ranges matter: one that ends at a slot's first byte misses it.
    Those ranges are few (36 per edge, :func:`_edge_ranges`): seeds ``0 .. n - 1`` ask each
    once, in a fixed shuffled order, and seed ``s`` asks what ``s % n`` asks (324 on
    :func:`~kvmviz.presets.q35_512m_layout`). The answer is :meth:`MemslotLayout.hits`
    (``__kvm_handle_hva_range``, docs/kernel.md §2).

    Parameters
    ----------
    seed : int
    layout : MemslotLayout, optional
        Default :func:`kvmviz.presets.q35_512m_layout` (chapter 01's QEMU).

    Examples
    --------
    >>> q = hit_or_miss(seed=4)
    >>> q.check(q.answer)[0]
    True
    """
    layout = q35_512m_layout() if layout is None else layout
    seed = check_seed(seed)
    ranges = _edge_ranges(layout)
    start, end = ranges[_case("hit_or_miss", seed, len(ranges))]
    hit = layout.hits(start, end)
    question = (
        f"The VM's memslots (every range half-open, `[start, end)`):\n\n{_slot_list(layout)}"
        f"\n\nThe MMU notifier fires on hva [{start:#x}, {end:#x}). Does it hit a memslot? "
        "(answer True or False; yes or no also work)"
    )
    if hit:
        reached = ", ".join(
            f"slot {g.slot} gfns [{g.gfn_start:#x}, {g.gfn_end:#x})"
            for g in layout.gfn_ranges(start, end)
        )
        why = f"It reaches {reached}."
    else:
        why = (
            "It overlaps no slot: [start, end) is half-open, so a range that ends at a slot's "
            "first byte, or starts at its end, misses it."
        )
    return Exercise("hit-or-miss", seed, question, bool(hit), why)


_DATA = Path(__file__).resolve().parent.parent / "data"
_TRACE = _DATA / "traces" / "notifier-phases-linux6.18.txt"
_TRACE_LAYOUT = _DATA / "traces" / "notifier-phases-linux6.18.layout.json"


@functools.lru_cache(maxsize=1)
def _shipped_records() -> pd.DataFrame:
    """Chapters 02 and 07's trace, classified: ``data/traces`` of the kvmviz repository."""
    from .inputs.traces import load_ftrace, load_layout
    from .model.classify import records

    if not _TRACE.exists():
        raise FileNotFoundError(
            f"{_TRACE}: trace-count, ksm-hits and v513-locks ask about the trace in "
            "data/traces/ of the kvmviz repository, which this installation lacks; pass "
            "classified= (kvmviz.classify.records of your own trace)"
        )
    return records(load_ftrace(_TRACE), load_layout(_TRACE_LAYOUT))


def _trace_text(shipped: bool) -> str:
    """Which trace a question counts in: the repository's, by its files, or the caller's."""
    if not shipped:
        return "the trace you classified (`classified=`)"
    root = _DATA.parent
    return (
        f"the trace `{_TRACE.relative_to(root)}` (memslots: `{_TRACE_LAYOUT.relative_to(root)}`; "
        "`kv.classify.records(kv.load_ftrace(trace), kv.traces.load_layout(memslots))`)"
    )


_WINDOW = 30  # notifications in one trace-count window


def _mixed_windows(notifier: pd.DataFrame) -> list[tuple[str, int]]:
    """Every window :func:`trace_count` asks about: ``(phase, first row in the phase)``.

    Thirty consecutive notifications of one phase with more than thirty, holding both hits and
    misses: never a whole phase (whose counts chapter 02's tables print), never all hits or all
    misses (a run that a table of one task or one callback could give away).
    """
    windows = []
    for phase, rows in notifier.groupby("phase", observed=True, sort=False):
        hit = rows["hit"].to_numpy(dtype=np.int64)
        if len(hit) <= _WINDOW:
            continue
        sums = np.convolve(hit, np.ones(_WINDOW, dtype=np.int64), mode="valid")
        windows += [(str(phase), int(i)) for i in np.flatnonzero((sums > 0) & (sums < _WINDOW))]
    return windows


def trace_count(seed: int = 0, classified: pd.DataFrame | None = None) -> Exercise:
    """How many notifications between two lines of a trace hit a memslot? Answer: an ``int``.

    A window of 30 consecutive notifications inside one phase of the trace that has more than
    30, holding both hits and misses (:func:`_mixed_windows`): never a whole phase, whose
    counts chapter 02's tables print, nor a run of one kind. Seeds ``0 .. n - 1`` ask the ``n``
    windows once each, in a fixed shuffled order (seed ``s`` asks what ``s % n`` asks; 154 on
    chapter 02's trace). The answer is the sum of the ``hit`` column
    :func:`kvmviz.classify.records` computes over the window.

    Parameters
    ----------
    seed : int
    classified : pandas.DataFrame, optional
        :func:`kvmviz.classify.records` of a trace; default chapter 02's trace
        (``data/traces/notifier-phases-linux6.18.txt`` with its layout).
    """
    seed = check_seed(seed)
    shipped = classified is None
    classified = _shipped_records() if shipped else classified
    notifier = _notifier_records(classified)
    windows = _mixed_windows(notifier)
    if not windows:
        raise ValueError(
            f"no phase of the trace has {_WINDOW} consecutive notifications with both hits and "
            "misses"
        )
    phase, first = windows[_case("trace_count", seed, len(windows))]
    rows = notifier[notifier["phase"] == phase]
    window = rows.iloc[first : first + _WINDOW]
    lo, hi = int(window["line"].iloc[0]), int(window["line"].iloc[-1])
    hits = int(window["hit"].sum())
    question = (
        f"In {_trace_text(shipped)}: between lines {lo} and {hi} (both included), the host sent "
        f"{len(window)} notifications. How many of them hit a memslot? (a number: filter "
        "`classified` on its `line` column)"
    )
    why = (
        f"{hits} of the {len(window)}: `notifier[notifier.line.between({lo}, {hi})].hit.sum()` "
        "(kvmviz.classify.records ran the hit test on every line)."
    )
    return Exercise("trace-count", seed, question, hits, why)


@functools.lru_cache(maxsize=1)
def _shipped_layout() -> MemslotLayout:
    """The memslots of chapter 02's trace (``data/traces``)."""
    from .inputs.traces import load_layout

    _shipped_records()  # says what is missing if the repository's data is not there
    return load_layout(_TRACE_LAYOUT)


def _notifier_records(classified: pd.DataFrame) -> pd.DataFrame:
    if "hit" not in classified.columns:
        raise ValueError(
            "classified: the frame has no hit column; pass kvmviz.classify.records(events, "
            "layout) of kvmviz.load_ftrace(...)"
        )
    return classified[classified["callback"].notna()]


def _ksm_cases(rows: pd.DataFrame) -> list[tuple[str, str | None, bool, int]]:
    """Every question :func:`ksm_hits` asks of a ``ksm`` phase: ``(callback, task or None,
    count the hits?, answer)``.

    One callback's records (every task, or one task's when that is not all of them), their
    hits or their misses; never a count of 0 (a callback that never hits asks nothing), never
    the phase's hits or misses of every callback, nor a count equal to them (chapter 02's and
    chapter 07's phase tables print those).
    """
    phase_hit = rows["hit"].to_numpy(dtype=bool)
    printed = {True: int(phase_hit.sum()), False: int((~phase_hit).sum())}
    cases = []
    for callback in CALLBACKS:
        mine = rows[rows["callback"] == callback]
        if mine.empty:
            continue
        tasks = sorted({str(c) for c in mine["comm"]}) if "comm" in mine.columns else []
        selections: list[tuple[str | None, pd.DataFrame]] = [(None, mine)]
        if len(tasks) > 1:
            selections += [(task, mine[mine["comm"].astype(str) == task]) for task in tasks]
        for task, selected in selections:
            hit = selected["hit"].to_numpy(dtype=bool)
            for count_hits in (True, False):
                answer = int(hit.sum() if count_hits else (~hit).sum())
                if answer and answer != printed[count_hits]:
                    cases.append((callback, task, count_hits, answer))
    return cases


def ksm_hits(seed: int = 0, classified: pd.DataFrame | None = None) -> Exercise:
    """In a trace's ``ksm`` phase, how many records of one callback hit (or miss) a memslot?

    Chapter 07's first exercise. Answer: an ``int``. The cases (:func:`_ksm_cases`): one
    callback the phase shows, all its records or one task's, counting hits or misses, never a
    count of 0 and never the phase's totals, which the per-phase tables print. They are few:
    seeds ``0 .. n - 1`` ask each once, in a fixed shuffled order, and seed ``s`` asks what
    ``s % n`` asks (6 on chapter 07's trace). The answer is the ``hit`` column
    :func:`kvmviz.classify.records` computed, the hit test of ``__kvm_handle_hva_range``
    (:meth:`MemslotLayout.hit_mask`).

    Parameters
    ----------
    seed : int
    classified : pandas.DataFrame, optional
        :func:`kvmviz.classify.records` of a trace with a ``PHASE ksm`` mark (the phases of
        ``data/README.md``); default chapter 07's trace
        (``data/traces/notifier-phases-linux6.18.txt`` with its layout).

    Examples
    --------
    >>> q = ksm_hits(seed=1)
    >>> q.check(q.answer)[0]
    True
    """
    seed = check_seed(seed)
    shipped = classified is None
    classified = _shipped_records() if shipped else classified
    notifier = _notifier_records(classified)
    phases = [str(p) for p in pd.unique(notifier["phase"].dropna())]
    if "ksm" not in phases:
        raise ValueError(
            "the trace has no notifier record in a phase named ksm (PHASE ksm, data/README.md); "
            f"its phases: {', '.join(phases) or 'none'}"
        )
    rows = notifier[notifier["phase"] == "ksm"]
    cases = _ksm_cases(rows)
    which, task, count_hits, answer = cases[_case("ksm_hits", seed, len(cases))]
    mine = rows[rows["callback"] == which]
    if task is not None:
        mine = mine[mine["comm"].astype(str) == task]
    hit = mine["hit"].to_numpy(dtype=bool)
    records = f"`{which}` records" + ("" if task is None else f" of the task `{task}`")
    verb = "hit a memslot" if count_hits else "miss every memslot"
    question = (
        f"In the `ksm` phase of {_trace_text(shipped)}, how many {records} {verb}? (a number: "
        "count them "
        "from `classified`, the frame of `kv.classify.records`; the task is its `comm` column)"
    )
    why = (
        f"{answer} of the phase's {len(mine)} {records} {verb}: "
        f"{int(hit.sum())} overlap a memslot, {int((~hit).sum())} overlap none "
        "(kvmviz.classify.records ran the hit test of __kvm_handle_hva_range on each)."
    )
    return Exercise("ksm-hits", seed, question, answer, why)


_V513 = "v5.13"


def _v513_plans(classified: pd.DataFrame, layout: MemslotLayout) -> dict:
    """The callbacks a replay on v5.13 runs, for the whole trace (key ``None``) and for each
    phase (its notifications alone): :func:`kvmviz.classify.callbacks` of
    :func:`kvmviz.traces.to_stream`."""
    from .inputs.traces import to_stream

    plans = {None: callbacks(to_stream(classified), layout, _V513)}
    if "phase" in classified.columns:
        notifier = _notifier_records(classified)
        for phase in pd.unique(notifier["phase"].dropna()):
            rows = notifier[notifier["phase"] == phase]
            if (rows["hva_start"] != rows["hva_end"]).any():  # empty ranges are dropped
                plans[str(phase)] = callbacks(to_stream(rows), layout, _V513)
    return plans


def v513_locks(
    seed: int = 0,
    classified: pd.DataFrame | None = None,
    layout: MemslotLayout | None = None,
) -> Exercise:
    """On v5.13, how many of a trace's callbacks would have taken ``mmu_lock``? An ``int``.

    Chapter 07's second exercise. The trace's notifications become the engine's stream
    (:func:`kvmviz.traces.to_stream`: a ``kvm_unmap_hva_range`` is a start/end pair); the seed
    draws which callbacks are asked about: those of one phase (all of them, or one callback's),
    or one callback's over the whole trace, where some lock and some do not (a selection of
    start/end pairs only, which all lock, or of aging misses only, which none do, gives its
    answer away with its size). Never every callback of the whole trace: the per-kernel table
    of a replay prints that count (``lock_taken``). The cases are few: seeds ``0 .. n - 1``
    ask each once, in a fixed shuffled order, and seed ``s`` asks what ``s % n`` asks (5 on
    chapter 07's trace). The answer is the ``locked`` column of
    :func:`kvmviz.classify.callbacks` on v5.13: every start/end pair locks, hit or miss
    (8931a454aea0 left the ``on_lock`` path alone), the other callbacks only on a hit. The
    same callbacks a replay on v5.13 runs (:func:`kvmviz.experiments.compare_replay`), without
    simulating.

    Parameters
    ----------
    seed : int
    classified : pandas.DataFrame, optional
        :func:`kvmviz.classify.records` of a trace, with ``layout``; default chapter 07's
        trace (``data/traces/notifier-phases-linux6.18.txt``).
    layout : MemslotLayout, optional
        The memslots the trace was classified with; pass it with ``classified``.

    Examples
    --------
    >>> q = v513_locks(seed=0)
    >>> q.check(q.answer)[0]
    True
    """
    seed = check_seed(seed)
    if (classified is None) != (layout is None):
        raise ValueError("pass classified= and layout= together (the memslots of the trace)")
    shipped = classified is None
    if shipped:
        classified, layout = _shipped_records(), _shipped_layout()
    _notifier_records(classified)
    plans = _v513_plans(classified, layout)
    cases = []
    for phase, plan in plans.items():
        for which in [None, *(c for c in CALLBACKS if (plan["callback"] == c).any())]:
            rows = plan if which is None else plan[plan["callback"] == which]
            # Some lock and some do not: a count of all (pairs only) or none (aging misses
            # only) is a yes/no question in disguise, its total printed in the question.
            if (phase, which) != (None, None) and 0 < rows["locked"].sum() < len(rows):
                cases.append((phase, which))
    if not cases:
        raise ValueError(
            "no phase or callback of the trace has callbacks that lock on v5.13 beside some "
            "that do not"
        )
    phase, which = cases[_case("v513_locks", seed, len(cases))]
    plan = plans[phase]
    rows = plan if which is None else plan[plan["callback"] == which]
    answer = int(rows["locked"].sum())
    what = "callbacks" if which is None else f"`{which}` callbacks"
    where = "the notifications" if phase is None else f"the `{phase}` phase's notifications"
    question = (
        f"Replayed on **{_V513}**, {where} of {_trace_text(shipped)} run {len(plan)} callbacks "
        "(each `kvm_unmap_hva_range` is an `invalidate_range_start` and its "
        f"`invalidate_range_end`). How many of these {len(rows)} {what} would have taken "
        "`mmu_lock`? (a number: count from `classified`, the frame of `kv.classify.records`"
        + ("" if phase is None else ", whose `phase` column names the phase")
        + ")"
    )
    parts = []
    for callback, group in rows.groupby("callback", sort=False):
        hits = int(group["hit"].sum())
        locked = int(group["locked"].sum())
        parts.append(
            f"`{callback}`: {locked} of {len(group)} ({hits} hit; on a miss "
            f"{rule(_V513, callback, False).source})"
        )
    why = (
        f"{answer} of the {len(rows)}: on v5.13 every start/end pair locks, hit or miss "
        "(8931a454aea0 left the on_lock path alone), the other callbacks only on a hit "
        f"(kvmviz.classify.callbacks). {'; '.join(parts)}."
    )
    return Exercise("v513-locks", seed, question, answer, why)


# A fault storm on eight vCPUs (the tests' busy8): writers wait, readers queue behind them.
QUEUE_SCENE = presets.STORM_VM
_QUEUE_KERNEL = "v5.12"


def _scene_text(scenario: Scenario) -> str:
    """A scenario in words: its size and load, then every field that differs from
    ``Scenario()``, as ``Scenario(...)`` would take it."""
    from dataclasses import fields

    default = Scenario()
    changed = ", ".join(
        f"{f.name}={getattr(scenario, f.name)!r}"
        for f in fields(Scenario)
        if f.name != "layout" and getattr(scenario, f.name) != getattr(default, f.name)
    )
    layout = "" if scenario.layout == default.layout else f"; memslots {scenario.layout!r}"
    return (
        f"{scenario.n_vcpus} vCPUs, {scenario.faulting_share:.0%} of them faulting, "
        f"{scenario.guest_run_us:g} µs in the guest between faults on average, "
        f"{scenario.notifier_rate_hz:,.0f} notification events per second "
        f"({scenario.spurious_share:.0%} of them spurious), {scenario.duration_us / 1000:g} ms"
        f"{layout}; `kv.Scenario({changed})`"
    )


# Whom a fault attempt queues behind, by lock (Run.faults, blocked_by): the question says it.
_BEHIND = {
    "qrwlock": "Under the qrwlock a fault attempt that cannot read-lock at once queues behind "
    "the newest callback that asked for `mmu_lock` before it and has not released it yet "
    "(that writer closed the door: `queued_read_lock_slowpath`), and is granted when that "
    "callback releases. So count the attempts that asked for the lock after this callback "
    "asked and before it released, with no other callback asking in between.",
    "reader-pref": "Under a reader-preferring lock a fault attempt waits only for the callback "
    "*holding* the lock. So count the attempts that asked for the lock while this callback "
    "held it.",
    "fifo": "Here faults take `mmu_lock` for write too, and everyone queues in arrival order: "
    "a fault attempt queues behind the newest callback ahead of it in the queue. So count the "
    "attempts that asked for the lock after this callback asked and before it released, with "
    "no other callback asking in between.",
}


def queued_behind(
    seed: int = 0,
    run=None,
    window: tuple[float, float] | None = None,
    about: str | None = None,
) -> Exercise:
    """How many fault attempts queued behind one waiting callback? Answer: an ``int``.

    Chapter 07's third exercise, the one Perfetto shows as arrows: a callback that took
    ``mmu_lock`` for write and had to wait for it, picked by the seed (in ``window`` if
    given). The answer is the number of fault attempts whose ``run.faults.blocked_by`` is that
    callback (the one home of who queued behind whom, :class:`~kvmviz.Run`): under the qrwlock
    the attempts that asked for the lock while it waited or held it, with no later callback
    ahead of them (a waiting writer holds back every new reader:
    ``queued_read_lock_slowpath``). A :func:`kvmviz.to_perfetto` ``.pftrace`` draws one flow
    from the callback's ``waiting for mmu_lock (write)`` slice to each of them.

    The question names everything needed to look outside a notebook: the VM and its
    scenario, the kernel, the lock, the seed, the window, and the commands that write the run
    for Perfetto or print the acquisitions of ``mmu_lock`` around the callback. Only callbacks
    that some fault queued behind are picked (any waiting callback if none was): seeds
    ``0 .. n - 1`` of one run pick its ``n`` such callbacks once each, in a fixed shuffled
    order.

    Parameters
    ----------
    seed : int
    run : Run, optional
        Default: :data:`QUEUE_SCENE` simulated on v5.12 with ``seed`` (one simulation).
    window : (float, float), optional
        Pick among the callbacks that arrive in ``[start_us, end_us)`` (the window a trace was
        exported with).
    about : str, optional
        How to get ``run``, said in the question (e.g. ``'chapter 07's replay on v5.12
        (runs["v5.12"])'``); default the run's kernel, lock, seed and scenario.

    Examples
    --------
    >>> q = queued_behind(seed=1)
    >>> q.check(q.answer)[0]
    True
    """
    seed = check_seed(seed)
    if run is None:
        from .model.engine import simulate

        run = simulate(QUEUE_SCENE, _QUEUE_KERNEL, seed=seed)
        make = f"kv.simulate(kv.exercises.QUEUE_SCENE, '{_QUEUE_KERNEL}', seed={seed})"
        about = (
            f"`kvmviz.exercises.QUEUE_SCENE` ({_scene_text(QUEUE_SCENE)}), simulated on "
            f"**{run.kernel}**, lock {run.policy}, seed {seed}: `{make}`"
        )
    else:
        make = None
        about = (
            f"{about} (**{run.kernel}**, lock {run.policy}, seed {run.seed})"
            if about is not None
            else (
                f"the run passed as `run=`: **{run.kernel}**, lock {run.policy}, seed "
                f"{run.seed}, on {_scene_text(run.scenario)}"
            )
        )
    n = run.notifiers
    locked = n["locked"].to_numpy(dtype=bool)
    arrive, grant = n["t_arrive_us"].to_numpy(dtype=float), n["t_grant_us"].to_numpy(dtype=float)
    pool = np.flatnonzero(locked & (np.nan_to_num(grant) > arrive))
    if window is not None:
        start, end = (float(x) for x in window)
        pool = pool[(arrive[pool] >= start) & (arrive[pool] < end)]
    if pool.size == 0:
        where = "" if window is None else f" arriving in [{window[0]:g}, {window[1]:g}) µs"
        raise ValueError(f"no callback{where} waited for mmu_lock on {run.kernel}")
    blocked = run.faults["blocked_by"].to_numpy()
    followed = pool[np.isin(pool, blocked)]  # a queue of nobody asks nothing: skip it if we can
    pool = followed if followed.size else pool
    pick = int(pool[_case("queued_behind", seed, pool.size)])
    count = int((blocked == pick).sum())
    row = n.iloc[pick]
    release = float(row["t_release_us"])
    hit = "it hit guest memory" if row["hit"] else "it missed every memslot"
    if window is None:
        span = f"the whole run (0 to {run.scenario.duration_us / 1000:g} ms)"
    else:
        span = f"the window {window[0] / 1000:.4f} to {window[1] / 1000:.4f} ms of the run"
    policy = run.policy if run.policy == "reader-pref" else "qrwlock"
    if run.scenario.faults_write(run.policy):
        policy = "fifo"
    # Bounds rounded outwards to the ns, so no request of the stretch is cut off.
    lo, hi = np.floor(row["t_arrive_us"] * 1000) / 1000, np.ceil(release * 1000) / 1000
    lock_rows = f"lock[lock.t_request_us.between({lo:.3f}, {hi:.3f})]"
    if make is not None:
        trace = f"queued-behind-{seed}.pftrace"
        look = (
            'To look, write the run for Perfetto: `python -c "import kvmviz as kv; '
            f"kv.to_perfetto({make}, '{trace}')\"`, open `{trace}` at "
            "https://ui.perfetto.dev, find the callback on a `notifiers` track at that time "
            "and count the arrows leaving its `waiting for mmu_lock (write)` slice; or print "
            "every request for `mmu_lock` from its request to its release: "
            f'`python -c "import kvmviz as kv; lock = {make}.lock; '
            f'print({lock_rows}.to_string())"`.'
        )
    else:
        look = (
            "To look: `kv.to_perfetto(run, 'queued.pftrace', window=...)` and Perfetto's "
            "arrows leaving its `waiting for mmu_lock (write)` slice, or every request for "
            f"`mmu_lock` from its request to its release: `lock = run.lock; {lock_rows}`."
        )
    question = (
        f"The run: {about}. Among the callbacks that waited for `mmu_lock` in {span}, take "
        f"the `{row['callback']}` of notifier event {int(row['event'])} ({hit}): it asked for "
        f"`mmu_lock` at t = {row['t_arrive_us'] / 1000:.4f} ms, waited {row['wait_us']:.2f} µs "
        f"for it and held it for {row['hold_us']:.3f} µs, until t = {release / 1000:.4f} ms. "
        f"How many fault attempts queued behind it? {_BEHIND[policy]} (a number)\n\n{look}"
    )
    why = (
        f"{count}: the fault attempts whose `blocked_by` is this callback, row {pick} of "
        f"`run.notifiers`: `(run.faults.blocked_by == {pick}).sum()`. "
        + (
            "Under the qrwlock a waiting writer holds back every new reader "
            "(queued_read_lock_slowpath): they queue behind it even while only readers hold "
            "the lock."
            if policy == "qrwlock"
            else _BEHIND[policy].split(". So")[0] + "."
        )
    )
    return Exercise("queued-behind", seed, question, count, why)


# Chapter 06's first sweep (Figure 6.1): the default VM for 10 ms, these sizes and seeds.
SWEEP_VCPUS = (16, 32, 64, 128, 256, 416)
SWEEP_SEEDS = (0, 1, 2, 3)
SWEEP_DURATION_US = 10_000.0
SWEEP_SHARES = (0.5, 0.8, 0.95)
"""The shares of spurious notifications :func:`first_vcpus_above` asks about."""
SWEEP_MEASURE = "stall_p99_us"
"""What :func:`first_vcpus_above` reads off the sweep: the p99 of the per-fault stall
(:func:`kvmviz.metrics.stall_stats`), the measure the kernels are ranked by."""
# Thresholds a figure can be read against: round numbers, each asked only when every value of
# the column lies at least 20 % and 1 µs away from it.
_NICE_US = (1, 2, 3, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400,
            500, 600, 750, 1000, 1500, 2000)  # fmt: skip
_MARGIN, _MARGIN_US = 0.2, 1.0


def _threshold_in_gap(column: pd.Series, gap: int) -> float | None:
    """A round threshold between the column's values at sizes ``gap - 1`` and ``gap``, far
    from every value of the column (20 % and 1 µs), so that the first size above it is size
    ``gap``; ``None`` if no round number fits there."""
    values = column.to_numpy(dtype=float)
    below, above = values[:gap], values[gap:]
    fits = [
        x
        for x in _NICE_US
        if below.max() < x < above.min()
        and np.all(np.abs(values - x) >= max(_MARGIN * x, _MARGIN_US))
    ]
    if not fits:
        return None
    middle = np.sqrt(max(values[gap - 1], 0.1) * values[gap])  # nearest the geometric middle
    return float(min(fits, key=lambda x: abs(np.log(x / middle))))


@functools.lru_cache(maxsize=1)
def _sweep() -> pd.DataFrame:
    """Chapter 06's sweep at the shares :func:`first_vcpus_above` asks about (216 runs, one
    :func:`~kvmviz.experiments.grid`), made once per process."""
    from .inputs.scenario import Scenario
    from .stats.experiments import grid

    return grid(
        Scenario(duration_us=SWEEP_DURATION_US),
        seeds=SWEEP_SEEDS,
        n_vcpus=list(SWEEP_VCPUS),
        spurious_share=list(SWEEP_SHARES),
    )


def first_vcpus_above(seed: int = 0, table: pd.DataFrame | None = None) -> Exercise:
    """From how many vCPUs on does the p99 stall per fault exceed X µs? Answer: an ``int``.

    Read off chapter 06's Figure 6.1: on one kernel and one share of spurious notifications,
    the smallest vCPU count of the sweep whose p99 per-fault stall (:data:`SWEEP_MEASURE`,
    ``stall_p99_us``: what a fault loses to ``mmu_lock`` from its first exit to the install
    that sticks, waits plus retried attempts; the mean over the seeds) exceeds a threshold.

    The cases are the (kernel, share, gap) of the sweep where a round threshold fits: a gap
    ``g`` lies between the ``g``-th and the ``g + 1``-th size of :data:`SWEEP_VCPUS`, so the
    answer is never the smallest size (a threshold below the whole column asks nothing), and
    the threshold is a round number there that every value of the column clears by 20 % and
    1 µs, so the figure decides it. Seeds ``0 .. n - 1`` ask the ``n`` cases once each, in a
    fixed shuffled order; seed ``s`` asks what ``s % n`` asks (42 of the 45 on the model's
    sweep today: a gap between two values closer than that has no threshold).

    Parameters
    ----------
    seed : int
    table : pandas.DataFrame, optional
        The sweep: :func:`kvmviz.experiments.grid` of ``Scenario(duration_us=10_000)`` over
        ``n_vcpus`` (:data:`SWEEP_VCPUS`) and ``spurious_share`` (:data:`SWEEP_SHARES`) with
        :data:`SWEEP_SEEDS` on every kernel (chapter 06's ``by_share``), with a
        ``stall_p99_us`` column. Default: that sweep, made here once per process (216 runs).
    """
    seed = check_seed(seed)
    table = _sweep() if table is None else table
    if SWEEP_MEASURE not in table.columns:
        raise ValueError(
            f"table: no {SWEEP_MEASURE} column; pass kvmviz.experiments.grid(...) of the sweep"
        )
    means = table.groupby(["kernel", "spurious_share", "n_vcpus"])[SWEEP_MEASURE].mean()
    cases = []  # (kernel, share, threshold, column)
    for kernel in KERNELS:
        for share in SWEEP_SHARES:
            try:
                column = means.loc[kernel, share].reindex(list(SWEEP_VCPUS))
            except KeyError:
                column = None
            if column is None or column.isna().any():
                raise ValueError(
                    f"table: the sweep lacks {kernel} at {share:.0%} spurious for some of "
                    f"{SWEEP_VCPUS} vCPUs"
                )
            for gap in range(1, len(SWEEP_VCPUS)):
                threshold = _threshold_in_gap(column, gap)
                if threshold is not None:
                    cases.append((kernel, share, threshold, column))
    if not cases:
        raise ValueError("the sweep leaves no round threshold between two sizes")
    kernel, share, threshold, column = cases[_case("first_vcpus_above", seed, len(cases))]
    answer = int(column[column > threshold].index.min())
    sizes = ", ".join(str(n) for n in SWEEP_VCPUS)
    question = (
        f"In Figure 6.1 (chapter 06's sweep: the default VM for "
        f"{SWEEP_DURATION_US / 1000:g} ms at {sizes} vCPUs, seeds "
        f"{SWEEP_SEEDS[0]} to {SWEEP_SEEDS[-1]}), on **{kernel}** with {share:.0%} of the "
        "notifications spurious: what is the smallest vCPU count of the sweep whose p99 "
        f"stall per fault exceeds {threshold:g} µs? The p99 stall per fault is "
        f"`{SWEEP_MEASURE}`: "
        "the 99th percentile, over the run's faults, of what one fault loses to `mmu_lock` "
        "from its first exit to the install that sticks (its waits plus its retried "
        "attempts), averaged over the seeds. Every value of that column is at least "
        f"{_MARGIN:.0%} (and {_MARGIN_US:g} µs) away from {threshold:g} µs, so reading the "
        "figure decides it. (answer a number of vCPUs, e.g. `64`)\n\nWithout the notebook, "
        'the column the figure draws: `python -c "import kvmviz as kv; t = '
        f"kv.experiments.grid(kv.Scenario(duration_us={SWEEP_DURATION_US:g}), "
        f"kernels=['{kernel}'], seeds={list(SWEEP_SEEDS)}, n_vcpus={list(SWEEP_VCPUS)}, "
        f"spurious_share=[{share:g}]); print(t.groupby('n_vcpus').{SWEEP_MEASURE}.mean())\"`."
    )
    values = ", ".join(f"{n} vCPUs: {v:.1f} µs" for n, v in column.items())
    why = f"The {SWEEP_MEASURE} of that column, mean of the seeds: {values}."
    return Exercise("first-vcpus-above", seed, question, answer, why)


KINDS: dict[str, Callable[..., Exercise]] = {
    "takes-lock": takes_lock_question,
    "zapped-gfns": zapped_gfns,
    "hit-or-miss": hit_or_miss,
    "callback-order": callback_order,
    "trace-count": trace_count,
    "grant-order": grant_order,
    "reader-wait": reader_wait,
    "must-retry": must_retry,
    "munmap-on-guest": munmap_on_guest,
    "walk-threshold": memslot_walk_threshold,
    "flush-hold": hit_flush_hold,
    "first-vcpus-above": first_vcpus_above,
    "ksm-hits": ksm_hits,
    "v513-locks": v513_locks,
    "queued-behind": queued_behind,
}
"""Every exercise kind, spelled as ``kvmviz quiz`` spells it, with its generator.

In the order of the chapters; each generator is called as ``generator(seed=..., **options)``
and returns an :class:`Exercise` whose ``kind`` is its key here.
"""


def quiz(kind: str, seed: int = 0, **options) -> Exercise:
    """The exercise ``kvmviz quiz KIND -s SEED`` prints.

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS`, e.g. ``"grant-order"``.
    seed : int
    **options
        The generator's options (``policy=`` for ``grant-order`` and ``reader-wait``).

    Raises
    ------
    ValueError
        An unknown kind, or an option the kind does not take, named with the choices.

    Examples
    --------
    >>> q = quiz("grant-order", 0)
    >>> q.kind, q.answer
    ('grant-order', [3, 8, 9, 9, 9, 12])
    """
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r}: expected one of {', '.join(KINDS)}")
    takes = {"grant-order": {"policy"}, "reader-wait": {"policy"}}.get(kind, set())
    unknown = sorted(set(options) - takes)
    if unknown:
        allowed = ", ".join(sorted(takes)) or "none"
        raise ValueError(f"{kind} takes no option {', '.join(unknown)} (options: {allowed})")
    return KINDS[kind](seed=seed, **options)
