"""The memslot hit test as exercises (chapter 01): does a callback take ``mmu_lock`` on this hva
range (``takes-lock``), which gfns does a range zap in every memslot (``zapped-gfns``), does a
range near a memslot's edge hit it (``hit-or-miss``)."""

from __future__ import annotations

from ..inputs.kernels import CALLBACKS, KERNELS_2021, rule
from ..inputs.memslots import PAGE_SIZE, MemslotLayout
from ..inputs.presets import VMM_HEAP, q35_512m_layout
from .base import Exercise, Generator, Scene, ZappedGfnsExercise
from .render import slot_list

__all__ = ["hit_or_miss", "takes_lock_question", "zapped_gfns"]


class TakesLock(Generator):
    """``takes-lock``: the scene is ``layout, kernel, callback, start, end`` (the hva range)."""

    kind, salt = "takes-lock", "takes_lock"

    def scene(self, seed: int, layout: MemslotLayout | None = None) -> Scene:
        layout = q35_512m_layout() if layout is None else layout
        rng = self.rng(seed)
        kernel = KERNELS_2021[rng.integers(len(KERNELS_2021))]
        callback = CALLBACKS[rng.integers(len(CALLBACKS))]
        if rng.random() < 0.5:
            slot = layout.slots[rng.integers(len(layout))]
            start = slot.hva_start + int(rng.integers(slot.npages)) * PAGE_SIZE
        else:
            start = VMM_HEAP[0] + int(rng.integers(1 << 16)) * PAGE_SIZE
        pages = int(rng.integers(1, 17))
        # change_pte and test_young carry one hva; the aging calls come one page (a PTE) at a
        # time (folio_referenced_one, damon_ptep_mkold): only a start/end pair spans several
        # pages.
        end = start + PAGE_SIZE * (pages if callback.startswith("invalidate_range") else 1)
        return Scene(layout=layout, kernel=kernel, callback=callback, start=start, end=end)

    def answer(self, scene: Scene) -> bool:
        hit = scene.layout.hits(scene.start, scene.end)
        return bool(rule(scene.kernel, scene.callback, hit).takes_lock)

    def question(self, scene: Scene) -> str:
        return (
            "The VM's memslots (every range half-open, `[start, end)`):\n\n"
            f"{slot_list(scene.layout)}\n\nOn **{scene.kernel}**, the MMU notifier calls "
            f"`{scene.callback}` on hva range [{scene.start:#x}, {scene.end:#x}). Does KVM take "
            "`mmu_lock` for write? (answer True or False; yes or no also work)"
        )

    def explain(self, scene: Scene, answer: bool) -> str:
        hit = scene.layout.hits(scene.start, scene.end)
        where = "hits a memslot" if hit else "misses every memslot"
        source = rule(scene.kernel, scene.callback, hit).source
        return f"The range {where}; {scene.kernel}: {source}."


_TAKES_LOCK = TakesLock()


def takes_lock_question(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Does this callback, on this kernel, on this hva range, take ``mmu_lock``?

    Answer: ``True`` or ``False`` (``"yes"`` / ``"no"`` accepted by :meth:`Exercise.check`).
    The scene: ``layout, kernel, callback, start, end``.
    """
    return _TAKES_LOCK(seed, layout=layout)


class ZappedGfns(Generator):
    """``zapped-gfns``: the scene is ``layout, slot`` (the memslot id the range begins in),
    ``start, end``."""

    kind, salt, exercise = "zapped-gfns", "zapped_gfns", ZappedGfnsExercise

    def scene(self, seed: int, layout: MemslotLayout | None = None) -> Scene:
        layout = q35_512m_layout() if layout is None else layout
        rng = self.rng(seed)
        slot = layout.slots[rng.integers(len(layout))]
        start = slot.hva_start + int(rng.integers(slot.size_bytes))
        end = start + int(rng.integers(1, 5 * PAGE_SIZE))
        return Scene(layout=layout, slot=slot.slot, start=start, end=end)

    def answer(self, scene: Scene) -> list:
        ranges = scene.layout.gfn_ranges(scene.start, scene.end)
        return [x for g in ranges for x in (g.gfn_start, g.gfn_end)]

    def question(self, scene: Scene) -> str:
        return (
            "The VM's memslots (every range half-open, `[start, end)`; as_id 0 is normal memory, "
            f"as_id 1 the SMM address space):\n\n{slot_list(scene.layout, gfns=True)}\n\nThe MMU "
            f"notifier calls `invalidate_range_start` on hva [{scene.start:#x}, {scene.end:#x}), "
            f"which begins inside slot {scene.slot}. Which guest frames does KVM zap, in "
            "**every** memslot the range touches (any slot, in either address space)?\n\n"
            "Answer with one `gfn_start gfn_end` pair per memslot touched, `gfn_end` exclusive "
            "(the first gfn not zapped), numbers in decimal or `0x` hex: e.g. `0x10 0x12` if "
            "gfns 0x10 and 0x11 of one slot are zapped. Two slots touched make two pairs, in any "
            "order, e.g. `16 18 4096 4098`; a slot of each address space counts, so an hva "
            "mapped in as_id 0 and as_id 1 makes two pairs even if their gfns are equal."
        )

    def explain(self, scene: Scene, answer: list) -> str:
        ranges = scene.layout.gfn_ranges(scene.start, scene.end)
        return (
            "__kvm_handle_hva_range walks every memslot of both address spaces, clips the range "
            "to each slot it overlaps, converts the start with hva_to_gfn_memslot and the end "
            "rounded up to a page, so every page the range touches is zapped: "
            + ", ".join(
                f"[{g.gfn_start:#x}, {g.gfn_end:#x}) in slot {g.slot} (as_id {g.as_id})"
                for g in ranges
            )
            + "."
        )


_ZAPPED_GFNS = ZappedGfns()


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
        The scene: ``layout, slot, start, end``.

    Examples
    --------
    >>> q = zapped_gfns(seed=1)
    >>> q.answer, q.check("0x4f 0x53")[0]
    ([79, 83], True)
    """
    return _ZAPPED_GFNS(seed, layout=layout)


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


class HitOrMiss(Generator):
    """``hit-or-miss``: the scene is ``layout, start, end``."""

    kind, salt = "hit-or-miss", "hit_or_miss"

    def scene(self, seed: int, layout: MemslotLayout | None = None) -> Scene:
        layout = q35_512m_layout() if layout is None else layout
        ranges = _edge_ranges(layout)
        start, end = ranges[self.case(seed, len(ranges))]
        return Scene(layout=layout, start=start, end=end)

    def answer(self, scene: Scene) -> bool:
        return bool(scene.layout.hits(scene.start, scene.end))

    def question(self, scene: Scene) -> str:
        return (
            "The VM's memslots (every range half-open, `[start, end)`):\n\n"
            f"{slot_list(scene.layout)}\n\nThe MMU notifier fires on hva "
            f"[{scene.start:#x}, {scene.end:#x}). Does it hit a memslot? "
            "(answer True or False; yes or no also work)"
        )

    def explain(self, scene: Scene, answer: bool) -> str:
        if answer:
            reached = ", ".join(
                f"slot {g.slot} gfns [{g.gfn_start:#x}, {g.gfn_end:#x})"
                for g in scene.layout.gfn_ranges(scene.start, scene.end)
            )
            return f"It reaches {reached}."
        return (
            "It overlaps no slot: [start, end) is half-open, so a range that ends at a slot's "
            "first byte, or starts at its end, misses it."
        )


_HIT_OR_MISS = HitOrMiss()


def hit_or_miss(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Does a range near the edge of a memslot hit it? Answer: ``True`` or ``False``.

    The range starts within six half pages of a memslot's first or last byte and spans one to
    four half pages, so half-open ranges matter: one that ends at a slot's first byte misses it.
    Those ranges are few (36 per edge, :func:`_edge_ranges`): seeds ``0 .. n - 1`` ask each
    once, in a fixed shuffled order, and seed ``s`` asks what ``s % n`` asks (324 on
    :func:`~kvmviz.presets.q35_512m_layout`). The answer is :meth:`MemslotLayout.hits`
    (``__kvm_handle_hva_range``, docs/kernel.md §2). The scene: ``layout, start, end``.

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
    return _HIT_OR_MISS(seed, layout=layout)
