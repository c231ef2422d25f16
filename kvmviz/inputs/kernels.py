"""The kernel rules: which MMU-notifier callbacks take ``mmu_lock``, on which kernel release.

Every release from v5.12 (x86 ``mmu_lock`` becomes an rwlock, 531810caa9f4) to v6.18 is a
valid ``kernel=``, spelled ``"v6.12"`` or ``"6.12"`` (a ``uname -r`` such as
``"6.8.0-49-generic"`` names v6.8): :func:`resolve` turns it into the canonical ``"v6.12"``
and the rules in force at that release apply. They are built from :data:`CHANGES`, one row per
commit that changed what the model sees, each with the first mainline release that carried it
(docs/kernel.md §1, §3, §4.6):

* ``v5.12``: every callback takes ``mmu_lock`` for write (``KVM_MMU_LOCK``, 531810caa9f4),
  whether or not the range touches guest memory.
* ``v5.13``: 8931a454aea0 takes the lock lazily, at the first memslot hit, in
  ``__kvm_handle_hva_range()``; but only for the *unpaired* callbacks, because the
  ``on_lock`` path of invalidate_range_start/end "does not yet support lock elision".
* ``v5.15``: 071064f14d87 (with 52ac8b358b0c keeping memslots stable between start and end)
  elides the lock for start/end pairs too; a spurious pair touches neither seq nor count.
* ``v6.0``: 20ec3ebd707c renames ``mmu_notifier_seq/count`` to ``mmu_invalidate_seq`` /
  ``mmu_invalidate_in_progress`` (labels only).
* ``v6.8``: 8569992d64b8 tracks the invalidated range in gfns; d02c357e5bfa makes a fault
  whose gfn is being invalidated retry *before* taking ``mmu_lock`` (the lockless pre-check).
* ``v6.10``: f3b65bbaed7c deletes ``.change_pte``: a KSM merge or a COW is a plain
  start/end pair, and asking for ``change_pte`` is an error.
* ``v6.11``: c793a62823d1 makes a PREEMPT_DYNAMIC kernel yield a contended lock only when
  booted preemptible (``preempt=full``).
* ``v6.13``: b9883ee40d7e: x86 ``clear_flush_young`` no longer flushes remote TLBs.
* ``v6.15``: aa34b811650c and the x86 patches age SPTEs without ``mmu_lock``: the three aging
  callbacks never take it, hit or miss.

:data:`KERNELS` are the toggle's milestones (the three 2021 positions, the 2024 freeze's
before and after, today's mainline); :data:`RELEASES` lists every release the model resolves.
``"hit"`` means the callback's hva range overlaps a memslot (:meth:`kvmviz.MemslotLayout.hits`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .._shared._checks import check_bool

__all__ = [
    "CALLBACKS",
    "CHANGES",
    "FLUSH_ON_RET",
    "KERNELS",
    "KERNELS_2021",
    "PAIRED_CALLBACKS",
    "PREEMPT_MODELS",
    "RELEASES",
    "Change",
    "Features",
    "Rule",
    "at_least",
    "callbacks_on",
    "features",
    "resolve",
    "rule",
    "rules_table",
    "takes_lock",
    "zap_yields",
]

RELEASES = tuple(f"v5.{m}" for m in range(12, 20)) + tuple(f"v6.{m}" for m in range(19))
"""Every mainline release the model resolves, oldest first: v5.12 to v6.18."""

KERNELS = ("v5.12", "v5.13", "v5.15", "v6.7", "v6.8", "v6.18")
"""The toggle's milestones: before 8931a454aea0, with it, with the pair follow-up (2021); the
last release before the lockless pre-check and the first with it (the 2024 freeze); today's
mainline rules. Every other release of :data:`RELEASES` is reachable by its name."""

KERNELS_2021 = KERNELS[:3]
"""The three positions of the 2021 story (chapters 02-06)."""

PREEMPT_MODELS = ("none", "voluntary", "full")
"""The preemption models a kernel can boot with (``preempt=`` on a PREEMPT_DYNAMIC kernel)."""

CALLBACKS = (
    "invalidate_range_start",
    "invalidate_range_end",
    "change_pte",
    "clear_flush_young",
    "clear_young",
    "test_young",
)
PAIRED_CALLBACKS = frozenset({"invalidate_range_start", "invalidate_range_end"})
_AGING = ("clear_flush_young", "clear_young", "test_young")
# kvm_hva_range.flush_on_ret per callback (virt/kvm/kvm_main.c, v5.13/v5.14): a VM-wide
# kvm_flush_remote_tlbs() under mmu_lock when the handler changed something. From v6.13 x86's
# clear_flush_young has it false (b9883ee40d7e): see rule().flush_on_ret.
FLUSH_ON_RET = {
    "invalidate_range_start": True,
    "invalidate_range_end": False,
    "change_pte": True,
    "clear_flush_young": True,
    "clear_young": False,
    "test_young": False,
}


class Change(NamedTuple):
    """One commit that changed what the model sees.

    Attributes
    ----------
    commit : str
        The mainline commit (12 hex digits).
    release : str
        The first mainline release that carried it.
    function : str
        The kernel function (or file) it changed.
    what : str
        What changed, in the model's words.
    """

    commit: str
    release: str
    function: str
    what: str


CHANGES = (
    Change(
        "531810caa9f4",
        "v5.12",
        "KVM_MMU_LOCK (virt/kvm/mmu_lock.h)",
        "x86 mmu_lock becomes an rwlock; every notifier callback takes it for write",
    ),
    Change(
        "4a42d848db95",
        "v5.12",
        "mmu_notifier_retry_hva()",
        "a fault retries if an invalidation in flight covers its hva, or seq moved",
    ),
    Change(
        "8931a454aea0",
        "v5.13",
        "__kvm_handle_hva_range()",
        "the unpaired callbacks take mmu_lock only at the first memslot hit",
    ),
    Change(
        "e1eed5847b09",
        "v5.13",
        "kvm_tdp_mmu_unmap_gfn_range(): can_yield = range->may_block",
        "a notifier's zap may yield mmu_lock when it is contended (before, never)",
    ),
    Change(
        "071064f14d87",
        "v5.15",
        "__kvm_handle_hva_range() on_lock path",
        "invalidate_range_start/end take mmu_lock only at the first memslot hit",
    ),
    Change(
        "20ec3ebd707c",
        "v6.0",
        "struct kvm",
        "mmu_notifier_seq/count renamed mmu_invalidate_seq/mmu_invalidate_in_progress",
    ),
    Change(
        "8569992d64b8",
        "v6.8",
        "mmu_invalidate_retry_gfn()",
        "the range in flight is tracked in gfns, not hvas",
    ),
    Change(
        "d02c357e5bfa",
        "v6.8",
        "kvm_faultin_pfn(): mmu_invalidate_retry_gfn_unsafe()",
        "a fault whose gfn is being invalidated retries before taking mmu_lock",
    ),
    Change(
        "f3b65bbaed7c",
        "v6.10",
        "kvm_mmu_notifier_change_pte (deleted)",
        "no change_pte callback: a KSM merge or COW is a plain start/end pair",
    ),
    Change(
        "c793a62823d1",
        "v6.11",
        "rwlock_needbreak()",
        "a contended lock is dropped only if the booted preemption model is preemptible",
    ),
    Change(
        "b9883ee40d7e",
        "v6.13",
        "kvm_mmu_notifier_clear_flush_young()",
        "x86 clear_flush_young no longer flushes remote TLBs",
    ),
    Change(
        "aa34b811650c",
        "v6.15",
        "kvm_age_hva_range(): .lockless",
        "the aging callbacks never take mmu_lock (SPTEs aged under RCU)",
    ),
)
"""The commits behind the rules, oldest first (docs/kernel.md §1.6, §1.7, §3.3, §4.6)."""

_CHANGE = {c.commit: c for c in CHANGES}


class Rule(NamedTuple):
    """What one callback does on one kernel.

    Attributes
    ----------
    takes_lock : bool
        Takes ``mmu_lock`` for write.
    count_delta : int
        Change to ``mmu_notifier_count`` / ``mmu_invalidate_in_progress`` (+1 in start, -1 in
        end, else 0).
    bumps_seq : bool
        Increments ``mmu_notifier_seq`` / ``mmu_invalidate_seq``, forcing every fault that
        sampled it earlier to retry.
    source : str
        The kernel function and commit the row comes from.
    flush_on_ret : bool
        Flushes remote TLBs (``kvm_flush_remote_tlbs``, under the lock) when its handler
        changed something.
    commit : str
        The commit that made the row what it is.
    since : str
        The first release carrying that commit.
    """

    takes_lock: bool
    count_delta: int
    bumps_seq: bool
    source: str
    flush_on_ret: bool = True
    commit: str = "531810caa9f4"
    since: str = "v5.12"


class Features(NamedTuple):
    """What a release does outside the per-callback rules.

    Attributes
    ----------
    kernel : str
        The canonical release (``"v6.8"``).
    precheck : bool
        A fault retries before taking ``mmu_lock`` when its gfn is being invalidated
        (d02c357e5bfa, v6.8).
    retry_range : {"hva", "gfn"}
        How the range in flight is tracked (8569992d64b8, v6.8).
    change_pte : bool
        KVM registers ``.change_pte`` (deleted by f3b65bbaed7c, v6.10).
    yield_needs_preemptible : bool
        ``rwlock_needbreak()`` asks the booted preemption model (c793a62823d1, v6.11); before,
        a PREEMPT_DYNAMIC kernel drops a contended lock whatever model it booted.
    seq_name, count_name : str
        The counters' names on that release (20ec3ebd707c, v6.0).
    """

    kernel: str
    precheck: bool
    retry_range: str
    change_pte: bool
    yield_needs_preemptible: bool
    seq_name: str
    count_name: str


_SPELLING = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+~_].*)?")


def resolve(kernel) -> str:
    """The canonical name of a release, ``"v6.12"``, from any of its spellings.

    Parameters
    ----------
    kernel : str
        ``"v6.12"``, ``"6.12"``, ``"6.12.3"`` or a ``uname -r`` such as ``"6.8.0-49-generic"``
        (stable and distribution kernels are taken at their mainline release: a backport is
        not modelled).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Not a release, or one outside v5.12-v6.18, naming the range.

    Examples
    --------
    >>> resolve("6.8"), resolve("v5.13"), resolve("6.8.0-49-generic")
    ('v6.8', 'v5.13', 'v6.8')
    """
    if isinstance(kernel, str):
        m = _SPELLING.fullmatch(kernel.strip())
        if m:
            name = f"v{int(m.group(1))}.{int(m.group(2))}"
            if name in _INDEX:
                return name
            raise ValueError(
                f"kernel {kernel!r} is outside the releases kvmviz models, "
                f"{RELEASES[0]} to {RELEASES[-1]} (x86 mmu_lock is a spinlock before v5.12)"
            )
    raise ValueError(
        f"unknown kernel {kernel!r}; expected a release from {RELEASES[0]} to {RELEASES[-1]}, "
        f"spelled 'v6.12' or '6.12' (the toggle's milestones: {', '.join(KERNELS)})"
    )


_INDEX = {k: i for i, k in enumerate(RELEASES)}


def at_least(kernel: str, release: str) -> bool:
    """Whether ``kernel`` is ``release`` or newer (both resolved by :func:`resolve`).

    Examples
    --------
    >>> at_least("6.8", "v6.8"), at_least("v6.7", "v6.8")
    (True, False)
    """
    return _INDEX[resolve(kernel)] >= _INDEX[resolve(release)]


def _since(kernel: str, commit: str) -> bool:
    return _INDEX[kernel] >= _INDEX[_CHANGE[commit].release]


def features(kernel: str) -> Features:
    """The :class:`Features` of a release.

    Examples
    --------
    >>> f = features("6.7"); f.precheck, f.yield_needs_preemptible, f.seq_name
    (False, False, 'mmu_invalidate_seq')
    >>> features("v6.18").precheck
    True
    """
    k = resolve(kernel)
    renamed = _since(k, "20ec3ebd707c")
    return Features(
        kernel=k,
        precheck=_since(k, "d02c357e5bfa"),
        retry_range="gfn" if _since(k, "8569992d64b8") else "hva",
        change_pte=not _since(k, "f3b65bbaed7c"),
        yield_needs_preemptible=_since(k, "c793a62823d1"),
        seq_name="mmu_invalidate_seq" if renamed else "mmu_notifier_seq",
        count_name="mmu_invalidate_in_progress" if renamed else "mmu_notifier_count",
    )


def zap_yields(kernel: str, preempt: str, *, dynamic: bool = True) -> bool:
    """Whether a long zap holding ``mmu_lock`` gives it up when a vCPU queues for it.

    The TDP MMU's zap loop checks ``rwlock_needbreak()`` at every SPTE
    (``tdp_mmu_iter_cond_resched``) and, if true, flushes and ``cond_resched_rwlock_write()``;
    a notifier's zap may do so from e1eed5847b09 (v5.13, ``range->may_block``).
    ``rwlock_needbreak()`` is ``rwlock_is_contended()`` only ``#ifdef CONFIG_PREEMPTION``
    (a09a689a5341), which a PREEMPT_DYNAMIC build always has, whatever ``preempt=`` it booted;
    from c793a62823d1 (v6.11) it also asks ``preempt_model_preemptible()``.

    Parameters
    ----------
    kernel : str
    preempt : {"none", "voluntary", "full"}
        The preemption model the kernel runs (booted, or built in).
    dynamic : bool
        Built with ``CONFIG_PREEMPT_DYNAMIC`` (most distribution kernels, Proxmox's included).

    Examples
    --------
    >>> zap_yields("v6.7", "voluntary"), zap_yields("v6.11", "voluntary")
    (True, False)
    >>> zap_yields("v6.7", "voluntary", dynamic=False), zap_yields("v6.18", "full")
    (False, True)
    >>> zap_yields("v5.12", "full")
    False
    """
    if preempt not in PREEMPT_MODELS:
        raise ValueError(f"unknown preemption model {preempt!r}; expected one of {PREEMPT_MODELS}")
    kernel = resolve(kernel)  # an unknown release is refused whatever the model
    dynamic = check_bool(dynamic, "dynamic")
    if not _since(resolve(kernel), "e1eed5847b09"):
        return False  # v5.12: the notifier zap passes can_yield = false
    if preempt == "full":
        return True
    return dynamic and not features(kernel).yield_needs_preemptible


def _rules_at(k: str, callback: str, hit: bool) -> Rule:
    """The rule in force on canonical release ``k``."""
    if callback == "change_pte" and _since(k, "f3b65bbaed7c"):
        raise ValueError(
            f"change_pte does not exist on {k}: f3b65bbaed7c deleted the callback in v6.10 "
            "(a KSM merge or a COW is a plain invalidate_range_start/end pair there)"
        )
    flush = FLUSH_ON_RET[callback]
    if not _since(k, "8931a454aea0"):
        # -- v5.12: everything under KVM_MMU_LOCK (531810caa9f4 made it write_lock on x86) --
        if callback == "invalidate_range_start":
            return Rule(
                True,
                +1,
                False,
                "kvm_mmu_notifier_invalidate_range_start: KVM_MMU_LOCK, count++ (531810caa9f4)",
                flush,
            )
        if callback == "invalidate_range_end":
            return Rule(
                True,
                -1,
                True,
                "kvm_mmu_notifier_invalidate_range_end: KVM_MMU_LOCK, seq++, count-- "
                "(531810caa9f4)",
                flush,
            )
        if callback == "change_pte":
            return Rule(
                True,
                0,
                True,
                "kvm_mmu_notifier_change_pte: KVM_MMU_LOCK, seq++ (bump removed by c13fda237f08)",
                flush,
            )
        return Rule(
            True,
            0,
            False,
            f"kvm_mmu_notifier_{callback}: KVM_MMU_LOCK always (531810caa9f4)",
            flush,
        )
    if callback in PAIRED_CALLBACKS:
        start = callback == "invalidate_range_start"
        if not _since(k, "071064f14d87"):
            # -- v5.13/v5.14: 8931a454aea0, but the on_lock path takes the lock up front --
            return Rule(
                True,
                +1 if start else -1,
                not start,
                "__kvm_handle_hva_range: on_lock path takes the lock up front (8931a454aea0)",
                flush,
                "8931a454aea0",
                "v5.13",
            )
        # -- v5.15+: 071064f14d87, the on_lock path runs at the first hit too --
        if start:
            return Rule(
                hit,
                +1 if hit else 0,
                False,
                "__kvm_handle_hva_range: on_lock (count++) at the first hit (071064f14d87)",
                flush,
                "071064f14d87",
                "v5.15",
            )
        return Rule(
            hit,
            -1 if hit else 0,
            hit,
            "__kvm_handle_hva_range: on_lock (seq++, count--) at the first hit (071064f14d87)",
            flush,
            "071064f14d87",
            "v5.15",
        )
    if callback == "change_pte":
        if not _since(k, "071064f14d87"):
            return Rule(
                hit,
                0,
                False,
                "__kvm_handle_hva_range: lock at first hit (8931a454aea0); no seq++ (c13fda237f08)",
                flush,
                "8931a454aea0",
                "v5.13",
            )
        return Rule(
            hit,
            0,
            False,
            "kvm_mmu_notifier_change_pte: returns early if count == 0 (071064f14d87)",
            flush,
            "071064f14d87",
            "v5.15",
        )
    # -- the aging callbacks --
    if _since(k, "aa34b811650c"):
        return Rule(
            False,
            0,
            False,
            "kvm_age_hva_range: .lockless = IS_ENABLED(CONFIG_KVM_MMU_LOCKLESS_AGING), selected "
            "by x86: never takes mmu_lock (aa34b811650c)",
            False,
            "aa34b811650c",
            "v6.15",
        )
    if callback == "clear_flush_young" and _since(k, "b9883ee40d7e"):
        return Rule(
            hit,
            0,
            False,
            "kvm_mmu_notifier_clear_flush_young: lock at the first hit (8931a454aea0); "
            "flush_on_ret false on x86 (b9883ee40d7e)",
            False,
            "b9883ee40d7e",
            "v6.13",
        )
    return Rule(
        hit,
        0,
        False,
        "__kvm_handle_hva_range: lock only at the first hit (8931a454aea0)",
        flush,
        "8931a454aea0",
        "v5.13",
    )


def _check(kernel, callback) -> str:
    # isinstance first: an array or a list would make ``in`` compare element-wise or raise.
    k = resolve(kernel)
    if not isinstance(callback, str) or callback not in CALLBACKS:
        raise ValueError(f"unknown callback {callback!r}; expected one of {CALLBACKS}")
    return k


def rule(kernel: str, callback: str, hit: bool) -> Rule:
    """The :class:`Rule` for ``callback`` on ``kernel`` when its range hits (or misses) a slot.

    Parameters
    ----------
    kernel : str
        A release from v5.12 to v6.18 (:func:`resolve`), e.g. one of :data:`KERNELS`.
    callback : str
        One of :data:`CALLBACKS` (``change_pte`` only before v6.10).
    hit : bool
        Whether the callback's hva range overlaps a memslot.

    Returns
    -------
    Rule

    Raises
    ------
    ValueError
        An unknown release or callback, or ``change_pte`` on v6.10 or later (f3b65bbaed7c).
    """
    k = _check(kernel, callback)
    return _rules_at(k, callback, check_bool(hit, "hit"))  # "no" is not False


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
    >>> takes_lock("6.18", "clear_flush_young", hit=True)
    False
    """
    return rule(kernel, callback, check_bool(hit, "hit")).takes_lock


def callbacks_on(kernel: str) -> tuple[str, ...]:
    """The callbacks KVM registers on ``kernel`` (no ``change_pte`` from v6.10)."""
    f = features(kernel)
    return tuple(cb for cb in CALLBACKS if f.change_pte or cb != "change_pte")


def rules_table(kernels=KERNELS):
    """The rules as a tidy :class:`pandas.DataFrame`, one row per kernel, callback, hit.

    Parameters
    ----------
    kernels : sequence of str
        The releases to list; default the milestones :data:`KERNELS` (pass :data:`RELEASES`
        for all of them). A callback a release does not have is left out.
    """
    import pandas as pd

    rows = [
        {"kernel": k, "callback": cb, "hit": hit, **rule(k, cb, hit)._asdict()}
        for k in (resolve(x) for x in kernels)
        for cb in callbacks_on(k)
        for hit in (False, True)
    ]
    return pd.DataFrame(rows)
