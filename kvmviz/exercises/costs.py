"""The model's costs as exercises (chapter 04): from how many memslots on a spurious callback
holds ``mmu_lock`` longer than X µs (``walk-threshold``), how long a hit holds it with its TLB
flush (``flush-hold``); each hold as :func:`kvmviz.simulate` charges it, without simulating."""

from __future__ import annotations

import functools

import pandas as pd

from ..inputs.kernels import KERNELS_2021, rule
from ..inputs.memslots import PAGE_SIZE, MemslotLayout
from ..inputs.presets import VMM_HEAP
from ..inputs.scenario import Scenario
from .base import Exercise, Generator, Scene

__all__ = ["hit_flush_hold", "memslot_walk_threshold"]


def _one_event_hold_us(scenario, kernel: str, kind: str, hva: int, callback: str) -> float:
    """Write hold of ``callback`` in one ``kind`` event at ``hva`` (a page), from the engine's
    cost plan (:func:`kvmviz.engine.callback_costs`: what :func:`kvmviz.simulate` charges it,
    without simulating)."""
    from ..inputs.notifiers import stream_from_callbacks
    from ..model.engine import callback_costs

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
    from ..inputs.presets import many_memslots_layout

    return many_memslots_layout(32764).slots


# The cost plan of the walk-threshold question (lookup "linear": walked as up to v5.16).
_WALK_BASE = Scenario(n_vcpus=1, duration_us=1.0, memslot_lookup="linear")


@functools.lru_cache(maxsize=4096)
def _walk_hold_us(kernel: str, callback: str, kind: str, hva: int, n_slots: int) -> float:
    """The write hold of the walk-threshold callback with the first ``n_slots`` memslots."""
    layout = MemslotLayout(_many_memslots()[:n_slots])
    return _one_event_hold_us(_WALK_BASE.replace(layout=layout), kernel, kind, hva, callback)


class WalkThreshold(Generator):
    """``walk-threshold``: the scene is ``kernel, callback, event`` (its event kind),
    ``threshold_us``, ``hva`` (a page of the VMM's heap) and ``base`` (the costs'
    :class:`~kvmviz.Scenario`)."""

    kind, salt = "walk-threshold", "memslot_walk_threshold"

    def scene(self, seed: int) -> Scene:
        rng = self.rng(seed)
        kernel, callback, event = _WALKING_MISSES[rng.integers(len(_WALKING_MISSES))]
        # One walk of 32,764 slots takes 59 µs, and v5.12 walks twice: every threshold is
        # reached.
        thresholds = (5, 10, 20, 50, 100) if kernel == "v5.12" else (2, 5, 10, 20, 50)
        threshold_us = thresholds[rng.integers(len(thresholds))]
        hva = VMM_HEAP[0] + int(rng.integers(1 << 16)) * PAGE_SIZE
        return Scene(
            kernel=kernel,
            callback=callback,
            event=event,
            threshold_us=threshold_us,
            hva=hva,
            base=_WALK_BASE,
        )

    @staticmethod
    def hold_us(scene: Scene, n_slots: int) -> float:
        """The callback's write hold with ``n_slots`` memslots, as the engine charges it."""
        return _walk_hold_us(scene.kernel, scene.callback, scene.event, scene.hva, n_slots)

    def answer(self, scene: Scene) -> int:
        threshold_us = scene.threshold_us

        def hold_us(n_slots: int) -> float:
            return self.hold_us(scene, n_slots)

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
            raise AssertionError(
                f"{threshold_us} µs is out of reach for {scene.kernel} {scene.callback}"
            )
        return answer

    def question(self, scene: Scene) -> str:
        base = scene.base
        return (
            "A VM has *n* memslots, and the kernel finds the ones a notification touches by "
            "walking them all, one by one (`kvm_for_each_memslot`, up to v5.16). Visiting one "
            f"memslot costs {base.memslot_walk_ns:g} ns; taking and releasing an uncontended "
            f"`mmu_lock` costs {base.lock_op_us * 1000:g} ns.\n\nOn **{scene.kernel}**, the VMM "
            f"triggers `{scene.callback}` on a page of its own heap (hva {scene.hva:#x}), which "
            "no memslot maps. From how many memslots on does this one callback hold `mmu_lock` "
            f"for write for **more than {scene.threshold_us} µs**? The hold is the lock and "
            "unlock plus every walk of the memslots made under the lock (a kernel may walk them "
            "more than once: count each walk).\n\nAnswer with the smallest such *n*, a whole "
            "number of memslots, e.g. `1234`."
        )

    def explain(self, scene: Scene, answer: int) -> str:
        if scene.kernel == "v5.12":
            walks = 2
            why = (
                f"On v5.12 kvm_mmu_notifier_{scene.callback} takes the write lock first "
                "(KVM_MMU_LOCK, 531810caa9f4) and only then looks for memslots, and x86 looked "
                "twice: for the rmaps (kvm_handle_hva_range) and again per TDP MMU root "
                "(kvm_tdp_mmu_handle_hva_range), until 3039bcc74498 (v5.13) merged the walks"
            )
        else:
            walks = 1
            why = (
                "On v5.13 invalidate_range_start still takes the lock before its one walk: its "
                "on_lock path 'does not yet support lock elision' (8931a454aea0); only "
                "071064f14d87 (v5.15) moved the lock to the first hit"
            )
        base = scene.base
        before = self.hold_us(scene, answer - 1) if answer > 1 else 0
        return (
            f"{why}. The hold is {base.lock_op_us * 1000:g} ns + {walks} x n x "
            f"{base.memslot_walk_ns:g} ns: {self.hold_us(scene, answer):.4f} µs at n = "
            f"{answer}, {before:.4f} µs at n = {answer - 1}."
        )


_WALK_THRESHOLD = WalkThreshold()


class FlushHold(Generator):
    """``flush-hold``: the scene is ``kernel, n_vcpus, scenario`` (the VM), ``ram`` (the
    memslot of the page), ``hva`` and ``hold_us`` (the hold the engine charges, unrounded)."""

    kind, salt = "flush-hold", "hit_flush_hold"

    def scene(self, seed: int) -> Scene:
        rng = self.rng(seed)
        kernel = KERNELS_2021[rng.integers(len(KERNELS_2021))]
        while True:  # a VM size whose answer is never near x.5: the rounding is no coin toss
            n_vcpus = 8 * int(rng.integers(2, 53))  # 16 .. 416
            scenario = Scenario(n_vcpus=n_vcpus, duration_us=1.0)
            ram = max((s for s in scenario.layout if s.as_id == 0), key=lambda s: s.npages)
            hva = ram.hva_start + int(rng.integers(ram.npages)) * PAGE_SIZE
            hold_us = _one_event_hold_us(scenario, kernel, "pair", hva, "invalidate_range_start")
            if abs(hold_us - round(hold_us)) < 0.25:
                break
        return Scene(
            kernel=kernel, n_vcpus=n_vcpus, scenario=scenario, ram=ram, hva=hva, hold_us=hold_us
        )

    def answer(self, scene: Scene) -> int:
        return round(scene.hold_us)

    def question(self, scene: Scene) -> str:
        s = scene.scenario
        return (
            f"A VM with **{scene.n_vcpus} vCPUs** runs **{scene.kernel}**. The host migrates one "
            f"4 KiB page of its RAM (hva {scene.hva:#x}, in memslot {scene.ram.slot}) to another "
            "NUMA node, so KVM gets `invalidate_range_start`, then `invalidate_range_end`, on "
            "that page.\n\nThe model's costs: lock + unlock "
            f"{s.lock_op_us * 1000:g} ns; {s.memslot_walk_ns:g} ns per memslot walked "
            f"({len(s.layout)} memslots); zapping {s.zap_base_us:g} µs + {s.zap_us_per_mib:g} µs "
            f"per MiB; one VM-wide TLB flush {s.tlb_flush_base_us:g} µs + "
            f"{s.tlb_flush_per_vcpu_us:g} µs x N for N <= 64 vCPUs, and past 64 vCPUs "
            f"`{s.tlb_flush_base_us:g} + {s.tlb_flush_per_vcpu_us:g} x 64 x (N/64)^"
            f"{s.tlb_flush_exponent:g}` µs. The vCPUs have faulted the page in, so the zap finds "
            "an SPTE.\n\nHow long does `invalidate_range_start` "
            "hold `mmu_lock` for write? Answer in µs, rounded to the nearest whole number, e.g. "
            "`12`."
        )

    def explain(self, scene: Scene, answer: int) -> str:
        s, hold_us = scene.scenario, scene.hold_us
        zap_us = s.zap_base_us + s.zap_us_per_mib * PAGE_SIZE / 2**20
        return (
            "The range hits a memslot, so every kernel takes the write lock "
            f"({rule(scene.kernel, 'invalidate_range_start', True).source}), zaps the page's "
            f"SPTEs ({zap_us:.3f} µs) and, since flush_on_ret is set for invalidate_range_start "
            "and the zap changed an SPTE, calls kvm_flush_remote_tlbs() before unlocking "
            "(__kvm_handle_hva_range: flush_on_ret && ret): "
            f"{s.tlb_flush_us:g} µs with {scene.n_vcpus} vCPUs to reach. Hold: {hold_us:.3f} µs, "
            f"about {answer} µs, {s.tlb_flush_us / hold_us:.1%} of it the flush."
        )


_FLUSH_HOLD = FlushHold()


def memslot_walk_threshold(seed: int = 0) -> Exercise:
    """From how many memslots on does one spurious callback hold ``mmu_lock`` longer than X µs?

    The memslots are those of :func:`kvmviz.presets.many_memslots_layout` (2 MiB each), walked
    linearly as up to v5.16; the callback misses them all (a page of the VMM's heap). Answer:
    the smallest number of memslots, an ``int`` in ``[1, 32764]``, at which the callback's
    write hold, as :func:`kvmviz.simulate` computes it, exceeds the threshold.

    The exercise's :attr:`~Exercise.scene` holds what :class:`WalkThreshold` names.
    """
    return _WALK_THRESHOLD(seed)


def hit_flush_hold(seed: int = 0) -> Exercise:
    """How long does an ``invalidate_range_start`` that hits guest memory hold ``mmu_lock``?

    A page migration (an invalidate_range_start/end pair) on one 4 KiB page of guest RAM of the
    default :class:`~kvmviz.Scenario` layout (the 12 TiB q35 VM), on a VM of N vCPUs. Answer: the
    write hold of its ``invalidate_range_start`` as :func:`kvmviz.simulate` computes it,
    rounded to a whole µs (``int``); the same on every kernel, because no kernel elides a hit.

    The exercise's :attr:`~Exercise.scene` holds what :class:`FlushHold` names.
    """
    return _FLUSH_HOLD(seed)
