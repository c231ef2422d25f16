"""The kernel rules: which MMU-notifier callbacks take ``mmu_lock``, on which kernel.

One table, one row per (kernel, callback, hit-or-miss), each citing the commit it comes from
(docs/kernel.md §1.2, §3 and the cheat-sheet in §8). ``"hit"`` means the callback's hva range
overlaps
a memslot (:meth:`kvmviz.MemslotLayout.hits`).

* ``v5.12``: every callback takes ``mmu_lock`` for write (``KVM_MMU_LOCK``, 531810caa9f4),
  whether or not the range touches guest memory.
* ``v5.13``: 8931a454aea0 takes the lock lazily, at the first memslot hit, in
  ``__kvm_handle_hva_range()``; but only for the *unpaired* callbacks, because the
  ``on_lock`` path of invalidate_range_start/end "does not yet support lock elision".
* ``v5.15``: 071064f14d87 (with 52ac8b358b0c keeping memslots stable between start and end)
  elides the lock for start/end pairs too; a spurious pair touches neither seq nor count.
"""

from __future__ import annotations

from typing import NamedTuple

from .._shared._checks import check_bool

__all__ = [
    "CALLBACKS",
    "FLUSH_ON_RET",
    "KERNELS",
    "PAIRED_CALLBACKS",
    "Rule",
    "rule",
    "rules_table",
    "takes_lock",
]

KERNELS = ("v5.12", "v5.13", "v5.15")
CALLBACKS = (
    "invalidate_range_start",
    "invalidate_range_end",
    "change_pte",
    "clear_flush_young",
    "clear_young",
    "test_young",
)
PAIRED_CALLBACKS = frozenset({"invalidate_range_start", "invalidate_range_end"})
# kvm_hva_range.flush_on_ret per callback (virt/kvm/kvm_main.c, v5.13/v5.14): a VM-wide
# kvm_flush_remote_tlbs() under mmu_lock when the handler changed something.
FLUSH_ON_RET = {
    "invalidate_range_start": True,
    "invalidate_range_end": False,
    "change_pte": True,
    "clear_flush_young": True,
    "clear_young": False,
    "test_young": False,
}


class Rule(NamedTuple):
    """What one callback does on one kernel.

    Attributes
    ----------
    takes_lock : bool
        Takes ``mmu_lock`` for write.
    count_delta : int
        Change to ``mmu_notifier_count`` (+1 in start, -1 in end, else 0).
    bumps_seq : bool
        Increments ``mmu_notifier_seq``, forcing every fault that sampled it earlier to retry.
    source : str
        The kernel function and commit the row comes from.
    """

    takes_lock: bool
    count_delta: int
    bumps_seq: bool
    source: str


def _build() -> dict[tuple[str, str, bool], Rule]:
    table: dict[tuple[str, str, bool], Rule] = {}
    for hit in (False, True):
        # -- v5.12: everything under KVM_MMU_LOCK (531810caa9f4 made it write_lock on x86) --
        table["v5.12", "invalidate_range_start", hit] = Rule(
            True,
            +1,
            False,
            "kvm_mmu_notifier_invalidate_range_start: KVM_MMU_LOCK, count++ (531810caa9f4)",
        )
        table["v5.12", "invalidate_range_end", hit] = Rule(
            True,
            -1,
            True,
            "kvm_mmu_notifier_invalidate_range_end: KVM_MMU_LOCK, seq++, count-- (531810caa9f4)",
        )
        table["v5.12", "change_pte", hit] = Rule(
            True,
            0,
            True,
            "kvm_mmu_notifier_change_pte: KVM_MMU_LOCK, seq++ (bump removed by c13fda237f08)",
        )
        for cb in ("clear_flush_young", "clear_young", "test_young"):
            table["v5.12", cb, hit] = Rule(
                True, 0, False, f"kvm_mmu_notifier_{cb}: KVM_MMU_LOCK always (531810caa9f4)"
            )
        # -- v5.13: 8931a454aea0, lock only at the first memslot hit, except the on_lock path --
        table["v5.13", "invalidate_range_start", hit] = Rule(
            True,
            +1,
            False,
            "__kvm_handle_hva_range: on_lock path takes the lock up front (8931a454aea0)",
        )
        table["v5.13", "invalidate_range_end", hit] = Rule(
            True,
            -1,
            True,
            "__kvm_handle_hva_range: on_lock path takes the lock up front (8931a454aea0)",
        )
        table["v5.13", "change_pte", hit] = Rule(
            hit,
            0,
            False,
            "__kvm_handle_hva_range: lock at first hit (8931a454aea0); no seq++ (c13fda237f08)",
        )
        for cb in ("clear_flush_young", "clear_young", "test_young"):
            table["v5.13", cb, hit] = Rule(
                hit, 0, False, "__kvm_handle_hva_range: lock only at the first hit (8931a454aea0)"
            )
        # -- v5.15: 071064f14d87, the on_lock path runs at the first hit too --
        table["v5.15", "invalidate_range_start", hit] = Rule(
            hit,
            +1 if hit else 0,
            False,
            "__kvm_handle_hva_range: on_lock (count++) at the first hit (071064f14d87)",
        )
        table["v5.15", "invalidate_range_end", hit] = Rule(
            hit,
            -1 if hit else 0,
            hit,
            "__kvm_handle_hva_range: on_lock (seq++, count--) at the first hit (071064f14d87)",
        )
        table["v5.15", "change_pte", hit] = Rule(
            hit,
            0,
            False,
            "kvm_mmu_notifier_change_pte: returns early if count == 0 (071064f14d87)",
        )
        for cb in ("clear_flush_young", "clear_young", "test_young"):
            table["v5.15", cb, hit] = Rule(
                hit, 0, False, "__kvm_handle_hva_range: lock only at the first hit (8931a454aea0)"
            )
    return table


_RULES = _build()


def _check(kernel: str, callback: str) -> None:
    # isinstance first: an array or a list would make ``in`` compare element-wise or raise.
    if not isinstance(kernel, str) or kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS}")
    if not isinstance(callback, str) or callback not in CALLBACKS:
        raise ValueError(f"unknown callback {callback!r}; expected one of {CALLBACKS}")


def rule(kernel: str, callback: str, hit: bool) -> Rule:
    """The :class:`Rule` for ``callback`` on ``kernel`` when its range hits (or misses) a slot.

    Parameters
    ----------
    kernel : {"v5.12", "v5.13", "v5.15"}
    callback : str
        One of :data:`CALLBACKS`.
    hit : bool
        Whether the callback's hva range overlaps a memslot.

    Returns
    -------
    Rule
    """
    _check(kernel, callback)
    return _RULES[kernel, callback, check_bool(hit, "hit")]  # "no" is not False


def takes_lock(kernel: str, callback: str, hit: bool) -> bool:
    """Whether ``callback`` takes ``mmu_lock`` for write on ``kernel``.

    Examples
    --------
    >>> takes_lock("v5.12", "clear_young", hit=False)
    True
    >>> takes_lock("v5.13", "clear_young", hit=False)
    False
    >>> takes_lock("v5.13", "invalidate_range_start", hit=False)
    True
    >>> takes_lock("v5.15", "invalidate_range_start", hit=False)
    False
    """
    return rule(kernel, callback, check_bool(hit, "hit")).takes_lock


def rules_table():
    """The rules table as a tidy :class:`pandas.DataFrame`, one row per kernel, callback, hit."""
    import pandas as pd

    rows = [
        {"kernel": k, "callback": cb, "hit": hit, **_RULES[k, cb, hit]._asdict()}
        for k in KERNELS
        for cb in CALLBACKS
        for hit in (False, True)
    ]
    return pd.DataFrame(rows)
