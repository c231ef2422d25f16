"""Which callbacks an operation of the host fires, in what order (chapter 02's
``callback-order``): the mm functions that call the MMU notifier, each with the event kind of
:data:`kvmviz.notifiers.EVENT_KINDS` it fires."""

from __future__ import annotations

from ..inputs.kernels import KERNELS_2021, rule
from ..inputs.memslots import PAGE_SIZE, MemslotLayout
from ..inputs.presets import VMM_HEAP, q35_512m_layout
from .base import CallbackOrderExercise, Exercise, Generator, Scene

__all__ = ["callback_order"]

# The primary-MMU operations of chapter 02, each with the event kind it fires
# (kvmviz.notifiers.EVENT_KINDS) and the mm function that fires it (docs/kernel.md §1.2, §1.6).
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

_TEXTS = {name: (text, source) for name, text, _, source in _OPERATIONS}


class CallbackOrder(Generator):
    """``callback-order``: the scene is ``layout, operation`` (a name of ``_OPERATIONS``),
    ``event`` (its event kind), ``npages, hva``."""

    kind, salt, exercise = "callback-order", "callback_order", CallbackOrderExercise

    def scene(self, seed: int, layout: MemslotLayout | None = None) -> Scene:
        layout = q35_512m_layout() if layout is None else layout
        rng = self.rng(seed)
        name, _, event, _ = _OPERATIONS[rng.integers(len(_OPERATIONS))]
        npages = int(rng.integers(1, 65)) if event == "pair" else 1
        if name == "munmap":
            hva = VMM_HEAP[0] + int(rng.integers(1 << 16)) * PAGE_SIZE
        else:
            ram = [s for s in layout if s.as_id == 0 and not s.flags & 0x2]  # 0x2: read-only ROM
            slot = ram[rng.integers(len(ram))]
            hva = slot.hva_start + int(rng.integers(max(1, slot.npages - npages + 1))) * PAGE_SIZE
        return Scene(layout=layout, operation=name, event=event, npages=npages, hva=hva)

    def answer(self, scene: Scene) -> tuple:
        from ..inputs.notifiers import EVENT_KINDS

        return EVENT_KINDS[scene.event]

    def question(self, scene: Scene) -> str:
        text = _TEXTS[scene.operation][0].format(npages=scene.npages, hva=scene.hva)
        return (
            f"On a Linux v5.13 host: {text}\n\nWhich MMU-notifier "
            "callbacks does KVM see, "
            "in what order? Name each callback once per call, in the order KVM receives them, "
            "separated by commas, spaces or arrows (`->`); `start` and `end` are short for "
            "`invalidate_range_start` and `invalidate_range_end`."
        )

    def explain(self, scene: Scene, answer: tuple) -> str:
        hit = scene.layout.hits(scene.hva, scene.hva + scene.npages * PAGE_SIZE)
        locks = "; ".join(
            f"{kernel}: "
            + (", ".join(cb for cb in answer if rule(kernel, cb, hit).takes_lock) or "none")
            for kernel in KERNELS_2021
        )
        where = "hits a memslot" if hit else "misses every memslot"
        return (
            f"{_TEXTS[scene.operation][1]}. KVM sees every callback, hit or miss: its hit test "
            f"runs inside each one. This range {where}; the callbacks that take mmu_lock for "
            f"write: {locks} (kvmviz.kernels.rule)."
        )


_CALLBACK_ORDER = CallbackOrder()


def callback_order(seed: int = 0, layout: MemslotLayout | None = None) -> Exercise:
    """Which callbacks does KVM see for this operation of the host, in what order?

    The answer is the callback sequence of the operation's event kind in
    :data:`kvmviz.notifiers.EVENT_KINDS` (a start/end pair, a page move start -> change_pte ->
    end, or one unpaired aging call); the explanation names the mm function that fires it and
    which of the callbacks take ``mmu_lock`` on each kernel (:func:`kvmviz.kernels.rule`).

    The exercise's :attr:`~Exercise.scene` holds what :class:`CallbackOrder` names.

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
    return _CALLBACK_ORDER(seed, layout=layout)
