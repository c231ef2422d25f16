"""Memslots: guest-physical ranges backed by ranges of the VMM's virtual address space.

A memslot maps ``npages`` guest frames starting at ``base_gfn`` onto host virtual memory starting
at ``userspace_addr``. KVM validates a new slot in ``__kvm_set_memory_region()``
(``virt/kvm/kvm_main.c``) and, when an MMU notifier fires on an hva range, walks the slots in
``__kvm_handle_hva_range()`` to find the gfns to zap (docs/kernel.md §2). This module
reproduces both:
the validation rules and the hit test, exactly, for both x86 address spaces.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._shared._checks import check_u64

__all__ = [
    "KVM_ADDRESS_SPACE_NUM",
    "KVM_MEM_MAX_NR_PAGES",
    "KVM_MEM_SLOTS_NUM",
    "KVM_USER_MEM_SLOTS",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "TASK_SIZE_MAX",
    "GfnRange",
    "Memslot",
    "MemslotError",
    "MemslotLayout",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# x86: as_id 0 is normal memory, as_id 1 is SMM (include/linux/kvm_host.h, KVM_ADDRESS_SPACE_NUM).
KVM_ADDRESS_SPACE_NUM = 2
# 4fc096a99e01 (v5.12): KVM_MEM_SLOTS_NUM = SHRT_MAX slot ids per address space. A VMM's own
# slots stop below KVM_USER_MEM_SLOTS = KVM_MEM_SLOTS_NUM - KVM_PRIVATE_MEM_SLOTS (32764 on x86:
# kvm_vm_ioctl_set_memory_region() refuses a higher id); the 3 ids above are KVM's internal
# slots (TSS, identity map, APIC access page), which it registers itself.
KVM_MEM_SLOTS_NUM = 32767
KVM_USER_MEM_SLOTS = 32764
KVM_MEM_MAX_NR_PAGES = (1 << 31) - 1
"""Most pages one memslot may hold (``include/linux/kvm_host.h``; just under 8 TiB of 4 KiB
pages): ``__kvm_set_memory_region()`` returns -EINVAL above it."""
# x86-64 TASK_SIZE_MAX, (1 << 56) - PAGE_SIZE with 5-level paging: __kvm_set_memory_region's
# access_ok() rejects a userspace_addr range that ends above it. A host with 4-level paging
# stops lower, at (1 << 47) - PAGE_SIZE; the model accepts the larger bound (any host's).
TASK_SIZE_MAX = (1 << 56) - PAGE_SIZE
_U64 = 1 << 64


class MemslotError(ValueError):
    """A memslot that ``__kvm_set_memory_region()`` would reject (-EINVAL / -EEXIST)."""


class GfnRange(NamedTuple):
    """The guest frames of one memslot touched by an hva range (``struct kvm_gfn_range``).

    ``gfn_end`` is exclusive, as in the kernel.
    """

    as_id: int
    slot: int
    gfn_start: int
    gfn_end: int

    @property
    def npages(self) -> int:
        """Number of 4 KiB guest pages in the range."""
        return self.gfn_end - self.gfn_start


@dataclass(frozen=True)
class Memslot:
    """One KVM memslot, as registered by ``KVM_SET_USER_MEMORY_REGION``.

    Parameters
    ----------
    slot : int
        Slot id within its address space (the low 16 bits of the ioctl's ``slot`` field).
    base_gfn : int
        First guest frame number (guest physical address >> 12).
    npages : int
        Number of 4 KiB pages; the slot covers gfns ``[base_gfn, base_gfn + npages)``.
    userspace_addr : int
        Host virtual address (hva) backing ``base_gfn``; must be page aligned.
    as_id : int, default 0
        Address space: 0 for normal memory, 1 for SMM (x86).
    flags : int, default 0
        ``KVM_MEM_LOG_DIRTY_PAGES`` (0x1), ``KVM_MEM_READONLY`` (0x2), ...
    """

    slot: int
    base_gfn: int
    npages: int
    userspace_addr: int
    as_id: int = 0
    flags: int = 0

    def __post_init__(self) -> None:
        # Checks in the order of __kvm_set_memory_region() (virt/kvm/kvm_main.c).
        for name in ("slot", "base_gfn", "npages", "userspace_addr", "as_id", "flags"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise MemslotError(
                    f"memslot {self.slot!r}: {name} must be an integer, got {value!r}"
                )
            object.__setattr__(self, name, int(value))
        if self.as_id not in range(KVM_ADDRESS_SPACE_NUM):
            raise MemslotError(
                f"memslot {self.slot}: as_id {self.as_id} is not an x86 address space "
                f"(expected 0 or 1; KVM_ADDRESS_SPACE_NUM = {KVM_ADDRESS_SPACE_NUM})"
            )
        if not 0 <= self.slot < KVM_MEM_SLOTS_NUM:
            raise MemslotError(
                f"memslot {self.slot}: slot id must be in [0, {KVM_MEM_SLOTS_NUM}) "
                f"(KVM_MEM_SLOTS_NUM, 4fc096a99e01; a VMM's ids stop below KVM_USER_MEM_SLOTS = "
                f"{KVM_USER_MEM_SLOTS}, the ids above are KVM's internal slots)"
            )
        if self.npages <= 0:
            raise MemslotError(
                f"memslot {self.slot} (as_id {self.as_id}): npages must be > 0, got {self.npages} "
                "(a size of 0 deletes a slot; it does not describe one)"
            )
        if self.npages > KVM_MEM_MAX_NR_PAGES:
            raise MemslotError(
                f"memslot {self.slot} (as_id {self.as_id}): {self.npages:,} pages is more than "
                f"one memslot may hold (KVM_MEM_MAX_NR_PAGES = {KVM_MEM_MAX_NR_PAGES:,}, just "
                "under 8 TiB; __kvm_set_memory_region: -EINVAL): split it into several slots"
            )
        if self.userspace_addr % PAGE_SIZE:
            raise MemslotError(
                f"memslot {self.slot} (as_id {self.as_id}): userspace_addr "
                f"{self.userspace_addr:#x} is not 4 KiB aligned (__kvm_set_memory_region: -EINVAL)"
            )
        if self.userspace_addr < 0 or self.userspace_addr + self.npages * PAGE_SIZE > TASK_SIZE_MAX:
            raise MemslotError(
                f"memslot {self.slot} (as_id {self.as_id}): hva range {self.userspace_addr:#x} + "
                f"{self.npages} pages is not user memory (access_ok: must end at or below "
                f"TASK_SIZE_MAX = {TASK_SIZE_MAX:#x})"
            )
        if self.base_gfn < 0 or (self.base_gfn + self.npages) << PAGE_SHIFT > _U64:
            raise MemslotError(
                f"memslot {self.slot} (as_id {self.as_id}): gfn range {self.base_gfn:#x} + "
                f"{self.npages} pages wraps the guest physical address space"
            )

    @property
    def hva_start(self) -> int:
        """First host virtual address of the slot."""
        return self.userspace_addr

    @property
    def hva_end(self) -> int:
        """One past the last host virtual address of the slot (exclusive)."""
        return self.userspace_addr + (self.npages << PAGE_SHIFT)

    @property
    def gfn_end(self) -> int:
        """One past the last guest frame of the slot (exclusive)."""
        return self.base_gfn + self.npages

    @property
    def size_bytes(self) -> int:
        """Size of the slot in bytes."""
        return self.npages << PAGE_SHIFT

    def hva_to_gfn(self, hva: int) -> int:
        """Guest frame of ``hva``, as ``hva_to_gfn_memslot()`` (include/linux/kvm_host.h)."""
        return self.base_gfn + ((hva - self.userspace_addr) >> PAGE_SHIFT)


class MemslotLayout:
    """The memslots of one VM, in both x86 address spaces.

    Validated like ``__kvm_set_memory_region()``: unique ``(as_id, slot)`` and no overlap of gfn
    ranges between slots of one address space (-EEXIST). hva ranges may overlap freely: QEMU's
    SMM address space (as_id 1) aliases the same host memory as as_id 0.

    Parameters
    ----------
    slots : iterable of Memslot

    Examples
    --------
    >>> layout = MemslotLayout([Memslot(slot=0, base_gfn=0, npages=512,
    ...                                 userspace_addr=0x7f0000000000)])
    >>> layout.hits(0x7f0000001000, 0x7f0000002000)
    True
    >>> layout.gfn_ranges(0x7f0000001800, 0x7f0000003001)
    [GfnRange(as_id=0, slot=0, gfn_start=1, gfn_end=4)]
    """

    def __init__(self, slots: Iterable[Memslot]) -> None:
        if isinstance(slots, Memslot) or not isinstance(slots, Iterable):
            raise TypeError(
                f"MemslotLayout: expected an iterable of Memslot objects, got {slots!r}"
            )
        slots = tuple(slots)
        for item in slots:
            if not isinstance(item, Memslot):
                raise MemslotError(f"expected Memslot objects, got {type(item).__name__}: {item!r}")
        seen: dict[tuple[int, int], Memslot] = {}
        for item in slots:
            key = (item.as_id, item.slot)
            if key in seen:
                raise MemslotError(
                    f"memslot {item.slot} (as_id {item.as_id}) is defined twice; a slot id is "
                    "unique within its address space"
                )
            seen[key] = item
        # No gfn overlap within one address space (__kvm_set_memory_region: -EEXIST).
        for as_id in range(KVM_ADDRESS_SPACE_NUM):
            in_as = sorted((s for s in slots if s.as_id == as_id), key=lambda s: s.base_gfn)
            for left, right in itertools.pairwise(in_as):
                if right.base_gfn < left.gfn_end:
                    raise MemslotError(
                        f"memslot {right.slot} (gfn {right.base_gfn:#x}-{right.gfn_end:#x}) "
                        f"overlaps memslot {left.slot} (gfn {left.base_gfn:#x}-{left.gfn_end:#x}) "
                        f"in address space {as_id} (__kvm_set_memory_region: -EEXIST)"
                    )
        # Kernel walk order: address space 0 then 1 (the KVM_ADDRESS_SPACE_NUM loop), slots by gfn.
        self._slots = tuple(sorted(slots, key=lambda s: (s.as_id, s.base_gfn)))
        self._hva_lo = np.array([s.hva_start for s in self._slots], dtype=np.uint64)
        self._hva_hi = np.array([s.hva_end - 1 for s in self._slots], dtype=np.uint64)
        self._merged_lo, self._merged_hi = _merge_intervals(self._hva_lo, self._hva_hi)

    # -- container protocol ---------------------------------------------------------------
    @property
    def slots(self) -> tuple[Memslot, ...]:
        """The slots, in the kernel's walk order: address space 0 then 1, each by gfn."""
        return self._slots

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Memslot]:
        return iter(self._slots)

    def __repr__(self) -> str:
        gib = self.total_pages * PAGE_SIZE / 2**30
        return f"MemslotLayout({len(self)} slots, {gib:.3g} GiB)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemslotLayout) and self._slots == other._slots

    def __hash__(self) -> int:
        return hash(self._slots)

    @property
    def total_pages(self) -> int:
        """Pages over all slots (aliases in as_id 1 counted again)."""
        return sum(s.npages for s in self._slots)

    def to_frame(self):
        """The slots as a tidy :class:`pandas.DataFrame`, one row per slot."""
        import pandas as pd

        return pd.DataFrame(
            {
                "as_id": [s.as_id for s in self._slots],
                "slot": [s.slot for s in self._slots],
                "base_gfn": [s.base_gfn for s in self._slots],
                "npages": [s.npages for s in self._slots],
                "gfn_end": [s.gfn_end for s in self._slots],
                "hva_start": np.array([s.hva_start for s in self._slots], dtype=np.uint64),
                "hva_end": np.array([s.hva_end for s in self._slots], dtype=np.uint64),
                "flags": [s.flags for s in self._slots],
            }
        )

    # -- the hit test ---------------------------------------------------------------------
    def hits(self, hva_start: int, hva_end: int) -> bool:
        """Whether ``[hva_start, hva_end)`` overlaps any memslot, in either address space.

        This is the condition under which ``__kvm_handle_hva_range()`` takes ``mmu_lock`` after
        8931a454ae: some slot with ``max(start, slot_start) < min(end, slot_end)``. Ranges are
        half-open, so a range ending exactly where a slot starts is a miss, and an empty range
        never hits.
        """
        start, end = _hva_pair(hva_start, hva_end)
        return bool(self.hit_mask(start, end)[0])

    def hit_mask(self, starts, ends) -> np.ndarray:
        """Vectorised :meth:`hits` over arrays of ranges.

        Parameters
        ----------
        starts, ends : array_like of int
            hva range bounds, ``end`` exclusive; Python ints or ``uint64``.

        Returns
        -------
        numpy.ndarray of bool
            ``True`` where the range touches a memslot. Cost is O(n log m) for n ranges and
            m slots (the interval tree of ed922739c919 gives the kernel the same bound).
        """
        starts = check_u64(starts, "starts")
        ends = check_u64(ends, "ends")
        if starts.shape != ends.shape:
            raise ValueError(f"starts and ends differ in shape: {starts.shape} vs {ends.shape}")
        if len(self._merged_lo) == 0:
            return np.zeros(starts.shape, dtype=bool)
        nonempty = starts < ends
        last = ends - np.uint64(1)  # inclusive end; only meaningful where nonempty
        # First merged interval whose inclusive end is >= start; it hits if it begins <= last.
        idx = np.searchsorted(self._merged_hi, starts, side="left")
        inside = idx < len(self._merged_hi)
        candidate_lo = self._merged_lo[np.minimum(idx, len(self._merged_lo) - 1)]
        return nonempty & inside & (candidate_lo <= last)

    def gfn_ranges(self, hva_start: int, hva_end: int) -> list[GfnRange]:
        """The guest frames a notifier on ``[hva_start, hva_end)`` reaches, per memslot.

        Exactly the per-slot step of ``__kvm_handle_hva_range()`` (docs/kernel.md §2): clip the
        range
        to the slot's hva span, convert the start with ``hva_to_gfn_memslot()`` and the end
        rounded up to a page (``hva_end + PAGE_SIZE - 1``), so a partially covered page is
        included and ``gfn_end`` stays exclusive. An hva aliased in as_id 0 and 1 yields one
        range per address space. Order: address space 0 then 1, each by gfn.
        """
        # The same checks as hits() and hit_mask(): integers in [0, 2**64), nothing coerced.
        start, end = _hva_pair(hva_start, hva_end)
        hva_start, hva_end = int(start[0]), int(end[0])
        out = []
        if hva_start >= hva_end:
            return out
        lo = np.searchsorted(self._merged_hi, np.uint64(hva_start), side="left")
        if lo >= len(self._merged_lo) or int(self._merged_lo[lo]) > hva_end - 1:
            return out
        candidates = np.nonzero(
            (self._hva_lo <= np.uint64(hva_end - 1)) & (self._hva_hi >= np.uint64(hva_start))
        )[0]
        for i in candidates:
            slot = self._slots[i]
            start = max(hva_start, slot.hva_start)
            end = min(hva_end, slot.hva_end)
            if start >= end:  # the kernel's "skip the slot if hva_start >= hva_end"
                continue
            out.append(
                GfnRange(
                    slot.as_id,
                    slot.slot,
                    slot.hva_to_gfn(start),
                    slot.hva_to_gfn(end + PAGE_SIZE - 1),
                )
            )
        return out


def _hva_pair(hva_start, hva_end) -> tuple[np.ndarray, np.ndarray]:
    """One range's bounds as 1-element uint64 arrays, checked as :meth:`hit_mask` checks
    arrays: ``hits``, ``hit_mask`` and ``gfn_ranges`` accept and refuse the same values (an
    ``unsigned long`` hva: an integer in ``[0, 2**64)``; floats, strings and booleans refused).
    A range with ``start >= end`` is empty: it hits nothing, in all three."""
    out = []
    # Start fully before end, as hit_mask checks starts before ends: the same first complaint.
    for name, value in (("hva_start", hva_start), ("hva_end", hva_end)):
        if isinstance(value, np.ndarray) or not np.isscalar(value):
            raise TypeError(f"{name}: expected one integer hva, got {type(value).__name__}")
        out.append(check_u64([value], name))
    return out[0], out[1]


def _merge_intervals(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of inclusive intervals ``[lo, hi]`` as sorted disjoint intervals."""
    if len(lo) == 0:
        return lo.copy(), hi.copy()
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    running_hi = np.maximum.accumulate(hi)
    # A new group starts where the interval begins after everything before it ended.
    new_group = np.ones(len(lo), dtype=bool)
    new_group[1:] = lo[1:] > running_hi[:-1]
    starts = np.nonzero(new_group)[0]
    ends = np.append(starts[1:], len(lo)) - 1
    return lo[starts], running_hi[ends]
