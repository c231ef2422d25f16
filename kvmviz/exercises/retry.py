"""``mmu_notifier_retry_hva()`` as exercises (chapter 05): must one fault retry after these
callbacks (``must-retry``), how many attempts retry when a ``munmap`` hits guest RAM
(``munmap-on-guest``); and the oracles the chapter shows beside them, :func:`retry_check` (the
check after a list of callbacks) and :func:`retry_table` (the check of every attempt of a run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._shared._checks import check_seed
from ..inputs import presets
from ..inputs.kernels import KERNELS_2021, rule
from ..inputs.memslots import PAGE_SIZE, MemslotLayout
from ..inputs.presets import VMM_HEAP, q35_512m_layout
from ..model import classify
from ..model.classify import Counters, mmu_notifier_retry_hva
from .base import Exercise, Generator, Scene
from .render import slot_list

__all__ = [
    "RETRY_SCENE",
    "RetryCase",
    "mmu_notifier_retry_hva",
    "munmap_on_guest",
    "must_retry",
    "retry_check",
    "retry_table",
]

_START, _END = "invalidate_range_start", "invalidate_range_end"


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
    calls : tuple of (str, int, int)
        The notifier callbacks that ran between the sample and the check, in order:
        ``(callback, hva_start, hva_end)``, end exclusive (one page for ``change_pte`` and
        ``test_young``, which carry a single address). Also read as ``callbacks``, its
        former name.
    """

    kernel: str
    hva: int
    seq: int
    calls: tuple

    @property
    def callbacks(self) -> tuple:
        """:attr:`calls`, by its former name."""
        return self.calls


def retry_check(
    kernel: str, layout: MemslotLayout, hva: int, seq: int, calls=None, *, callbacks=None
) -> tuple[bool, list[str]]:
    """Replay notifier callbacks on ``mmu_notifier_count`` / ``seq``, then check one fault.

    Each callback changes the counters as :func:`kvmviz.kernels.rule` says for ``kernel`` and
    for whether its range hits a memslot of ``layout``; a start that takes ``count`` from 0 to 1
    sets the invalidated range, later ones widen it to cover theirs (``kvm_inc_notifier_count``,
    4a42d848db95). Then ``mmu_notifier_retry_hva(kvm, seq, hva)``: retry if ``count != 0`` and
    ``hva`` lies in the range, or if ``seq`` moved (docs/kernel.md §3.2).

    Parameters
    ----------
    kernel : str
        A release from v5.12 to v6.18 (``"v5.13"``, ``"6.8"``); ``change_pte`` is refused from
        v6.10, which has none (f3b65bbaed7c).
    layout : MemslotLayout
    hva : int
        The faulting hva.
    seq : int
        The ``mmu_notifier_seq`` the fault sampled, with ``mmu_notifier_count`` 0 at the time.
    calls : iterable of (str, int, int)
        The callbacks that ran, ``(callback, hva_start, hva_end)`` in the order they ran.
    callbacks : iterable of (str, int, int), optional
        ``calls`` by its former keyword (it was renamed so that ``callbacks`` names one thing,
        :func:`kvmviz.classify.callbacks`); pass one of the two.

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
    >>> [retry_check(k, q35_512m_layout(), 0x7F6FFBF05000, 7, pair)[0] for k in KERNELS_2021]
    [True, True, False]
    """
    if (calls is None) == (callbacks is None):
        raise TypeError("retry_check: pass the callbacks that ran as calls (once)")
    calls = calls if callbacks is None else callbacks
    counters = Counters()
    counters.seq = int(seq)
    lines = []
    for i, (callback, start, end) in enumerate(calls, start=1):
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


class MustRetry(Generator):
    """``must-retry``: the scene is ``layout`` and ``case``, the :class:`RetryCase` drawn
    (kernel, faulting hva, sampled seq, the callbacks that ran)."""

    kind, salt = "must-retry", "must_retry"

    def scene(self, seed: int, layout: MemslotLayout | None = None) -> Scene:
        layout = q35_512m_layout() if layout is None else layout
        return Scene(layout=layout, case=self._case(self.rng(seed), layout))

    @staticmethod
    def _case(rng: np.random.Generator, layout: MemslotLayout) -> RetryCase:
        """Draw the kernel, the fault and the callbacks."""
        kernel = KERNELS_2021[rng.integers(len(KERNELS_2021))]
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

    def _checked(self, scene: Scene) -> tuple[bool, list[str]]:
        case = scene.case
        return retry_check(case.kernel, scene.layout, case.hva, case.seq, case.calls)

    def answer(self, scene: Scene) -> bool:
        return bool(self._checked(scene)[0])

    def question(self, scene: Scene) -> str:
        case = scene.case
        steps = "\n".join(
            f"{i}. `{cb}` at hva {start:#x} (its page: [{start:#x}, {end:#x}))"
            if cb in ("change_pte", "test_young")
            else f"{i}. `{cb}` on hva [{start:#x}, {end:#x})"
            for i, (cb, start, end) in enumerate(case.calls, start=1)
        )
        return (
            f"On **{case.kernel}**, the VM's memslots are (every range half-open, "
            f"`[start, end)`):\n\n{slot_list(scene.layout)}\n\n"
            f"A vCPU faults on hva {case.hva:#x}. It samples `mmu_notifier_seq` = {case.seq} (no "
            "invalidation in flight: `mmu_notifier_count` = 0) and resolves the pfn outside "
            f"`mmu_lock`. Meanwhile the MMU notifier calls, in this order:\n\n{steps}\n\n"
            "and nothing else (a start whose end is not listed is still in flight). Then the "
            f"vCPU takes `mmu_lock` and calls `mmu_notifier_retry_hva(kvm, {case.seq}, "
            f"{case.hva:#x})`. Must the fault retry? (answer True or False; yes or no also work)"
        )

    def explain(self, scene: Scene, answer: bool) -> str:
        return "\n".join(self._checked(scene)[1])


_MUST_RETRY = MustRetry()


def must_retry(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Must this vCPU fault retry? Answer: ``True`` or ``False``.

    A vCPU samples ``mmu_notifier_seq`` and goes to resolve the pfn; meanwhile a few notifier
    callbacks run (start/end pairs, ``set_pte_at_notify()`` brackets with a ``change_pte``,
    aging calls; on guest memory or the VMM's heap; possibly nested, possibly still in flight);
    then it takes ``mmu_lock`` and calls ``mmu_notifier_retry_hva()``. The answer is
    :func:`retry_check` on the drawn case (the kernel rules of :func:`kvmviz.kernels.rule`),
    explained step by step. The scene: ``layout`` and ``case``, the :class:`RetryCase`.

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
    return _MUST_RETRY(seed, layout=layout)


RETRY_SCENE = presets.RETRY_VM
"""Chapter 05's tiny VM (section 2): three vCPUs on QEMU's 512 MiB q35 layout that fault all the
time, resolving a pfn in 10 µs on average, for 40 µs; 4 µs between a start and its end."""

_MUNMAP_PAGES = (1, 4, 16, 64)
_MUNMAP_ROOM_US = 18.0  # the latest munmap comes this long before the end of RETRY_SCENE


def _pairs_stream(*rows) -> pd.DataFrame:
    """A hand-made notification stream: ``(t_us, kind, hva_start, hva_end)`` per event."""
    from ..inputs.notifiers import stream_from_callbacks

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


class MunmapOnGuest(Generator):
    """``munmap-on-guest``: the scene is ``seed`` (the workload's), ``kernel, npages, vcpu,
    t_munmap, start, end`` (the
    pair on guest RAM), ``stream`` (it, as the engine's stream), ``run`` (the simulation with
    it) and ``table`` (:func:`retry_table` of the run's first ``until`` µs)."""

    kind, salt = "munmap-on-guest", "munmap_on_guest"

    def scene(self, seed: int) -> Scene:
        from ..model.engine import simulate

        seed = check_seed(seed)
        rng = self.rng(seed)
        kernel = KERNELS_2021[rng.integers(len(KERNELS_2021))]
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
        cb = run.notifiers.set_index("callback")
        if not (cb.loc[_START, "locked"] and cb.loc[_END, "locked"]):
            raise AssertionError(f"a munmap on guest RAM must lock on {kernel}")
        return Scene(
            seed=seed,
            kernel=kernel,
            npages=npages,
            vcpu=vcpu,
            t_munmap=t_munmap,
            start=start,
            end=end,
            stream=stream,
            run=run,
            until=until,
            table=retry_table(run, until_us=until),
        )

    def answer(self, scene: Scene) -> int:
        return int(scene.table["retried"].sum())

    @staticmethod
    def _clock(scene: Scene) -> tuple[pd.Series, pd.Series, pd.DataFrame, object]:
        """The start's and the end's rows of ``run.notifiers``, the attempts in the order of
        their checks, and how an instant is printed: with as many decimals as keep every
        sample and check on the side of each counter change it lies on in the run."""
        cb = scene.run.notifiers.set_index("callback")
        s_row, e_row = cb.loc[_START], cb.loc[_END]
        count_up, seq_up = float(s_row["t_grant_us"]), float(e_row["t_release_us"])
        attempts = scene.table.sort_values(["checks at (µs)", "vcpu"], kind="stable")
        times = [*attempts["samples seq at (µs)"], *attempts["checks at (µs)"]]
        decimals = _decimals(times, [count_up, seq_up])

        def t(x) -> str:  # every instant at one precision; a hold with its own three digits
            return f"{float(x):.{decimals}f}"

        return s_row, e_row, attempts, t

    def question(self, scene: Scene) -> str:
        s_row, e_row, attempts, t = self._clock(scene)
        start, end = scene.start, scene.end
        hva_of = scene.run.faults.loc[attempts.index, "hva"].to_numpy()
        lines = "\n".join(
            f"- vCPU {int(row['vcpu'])} (hva {int(h):#x}): samples `mmu_notifier_seq` at "
            f"{t(row['samples seq at (µs)'])} µs, checks at {t(row['checks at (µs)'])} µs"
            for (_, row), h in zip(attempts.iterrows(), hva_of, strict=True)
        )
        slots = ", ".join(str(g.slot) for g in RETRY_SCENE.layout.gfn_ranges(start, end))
        window = RETRY_SCENE.invalidate_window_us
        npages = scene.npages
        return (
            f"Chapter 05's tiny VM (`kvmviz.exercises.RETRY_SCENE`, workload seed "
            f"{scene.seed}): {RETRY_SCENE.n_vcpus} vCPUs on QEMU's 512 MiB q35 layout, "
            f"faulting all the time. On **{scene.kernel}**, at {scene.t_munmap:g} µs the host "
            f"unmaps {npages} page{'s' * (npages > 1)} of guest RAM starting at vCPU "
            f"{scene.vcpu}'s page, hva [{start:#x}, {end:#x}) (in memslot {slots}). Before it, "
            "`mmu_notifier_seq` and `mmu_notifier_count` are both 0. Both callbacks take "
            "`mmu_lock` for write:\n\n"
            f"- `invalidate_range_start` arrives at {t(s_row['t_arrive_us'])} µs, takes "
            f"`mmu_lock` at {t(s_row['t_grant_us'])} µs and holds it {s_row['hold_us']:.3g} µs "
            f"(the zap and the TLB flush), until {t(s_row['t_release_us'])} µs. As it takes the "
            f"lock, `mmu_notifier_count` goes 0 -> 1 and the invalidated range is [{start:#x}, "
            f"{end:#x}).\n"
            f"- `invalidate_range_end` arrives {window:g} µs after the start released the lock, "
            f"at {t(e_row['t_arrive_us'])} µs, takes `mmu_lock` at {t(e_row['t_grant_us'])} µs "
            f"and holds it {e_row['hold_us']:.3g} µs, until {t(e_row['t_release_us'])} µs. As it "
            "releases the lock, `mmu_notifier_seq` goes 0 -> 1, then `mmu_notifier_count` "
            "1 -> 0.\n\n"
            f"Every fault attempt that takes `mmu_lock` in the first {scene.until:g} µs of this "
            "run (an attempt sent back to the guest faults again, and its retry is listed too), "
            "with when it sampled `mmu_notifier_seq` (before resolving the pfn, outside the lock) "
            "and when it called `mmu_notifier_retry_hva()` (as it took `mmu_lock`), in the order "
            f"of the checks:\n\n{lines}\n\n"
            "A counter that changes at the same instant as a sample or a check changes first. "
            "How many of these attempts must retry, i.e. are sent back to the guest? (a number)"
        )

    def explain(self, scene: Scene, answer: int) -> str:
        s_row, e_row, _, t = self._clock(scene)
        count_up, seq_up = s_row["t_grant_us"], e_row["t_release_us"]
        kernel, layout = scene.kernel, RETRY_SCENE.layout
        slots = ", ".join(str(g.slot) for g in layout.gfn_ranges(scene.start, scene.end))
        plan = classify.callbacks(scene.stream, layout, kernel).set_index("callback")
        on_start, on_end = plan.loc[_START], plan.loc[_END]
        back = scene.table[scene.table["retried"]]
        who = "; ".join(
            f"vCPU {vcpu} at {t(at)} µs ("
            + (
                "the range half: count is 1 and its hva is in the range"
                if in_range
                else f"seq alone: it sampled {sampled}, it is {now} now"
            )
            + ")"
            for vcpu, at, in_range, sampled, now in zip(
                back["vcpu"],
                back["checks at (µs)"],
                back["hva in range"],
                back["seq sampled"],
                back["seq now"],
                strict=True,
            )
        )
        lock = "takes `mmu_lock`" if on_start.locked else "skips `mmu_lock`"
        return (
            f"{answer} attempt{'s' * (answer != 1)} retry. The range hits slot {slots}, and a "
            f"hit counts on every kernel: on {kernel} the start {lock} and moves "
            f"`mmu_notifier_count` by {on_start.count_delta:+d} "
            f"({rule(kernel, _START, bool(on_start.hit)).source}), the end "
            f"{'bumps' if on_end.bumps_seq else 'leaves'} `mmu_notifier_seq` and moves the count "
            f"by {on_end.count_delta:+d} ({rule(kernel, _END, bool(on_end.hit)).source}); "
            "nothing is elided, v5.15 included. An attempt retries if it checks while the count "
            f"is 1 ({t(count_up)} to {t(seq_up)} µs) on an hva in the range, or if it sampled "
            f"seq before {t(seq_up)} µs and checks after. Sent back: {who or 'nobody'}. "
            "`kvmviz.exercises.retry_table(run, until_us=40)` on this run shows each check "
            "(chapter 05's `checks()`)."
        )


_MUNMAP_ON_GUEST = MunmapOnGuest()


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

    The exercise's :attr:`~Exercise.scene` holds what :class:`MunmapOnGuest` names.

    Examples
    --------
    >>> q = munmap_on_guest(seed=2)
    >>> q.check(q.answer)[0]
    True
    """
    return _MUNMAP_ON_GUEST(seed)


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
    from ..stats.metrics import notifier_counters

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
