"""The 2024 freeze as exercises (chapter 08): does this zap yield ``mmu_lock`` (``zap-yields``),
does this fault take ``mmu_lock`` under the lockless pre-check (``precheck-lock``), and how
many read acquisitions of ``mmu_lock`` end in a retry on v6.7 and on v6.8 (``futile-reads``).

Each answer comes from the model: :func:`kvmviz.kernels.zap_yields` (the kernel and its
preemption model), :func:`kvmviz.classify.precheck_retry` (d02c357e5bfa's
``mmu_invalidate_retry_gfn_unsafe()``) and a run of :func:`kvmviz.simulate`.
"""

from __future__ import annotations

from ..inputs.kernels import RELEASES, at_least, features, zap_yields
from .base import Exercise, Generator, Scene

__all__ = ["precheck_lock", "zap_yields_question"]

# The build option each preemption model is, on a kernel without CONFIG_PREEMPT_DYNAMIC.
_BUILT = {"none": "CONFIG_PREEMPT_NONE", "voluntary": "CONFIG_PREEMPT_VOLUNTARY", "full": "CONFIG_PREEMPT"}
_PREEMPTS = ("none", "voluntary", "full")
# Every case zap-yields asks about: (release, preemption model, PREEMPT_DYNAMIC).
_YIELD_CASES = tuple((k, p, d) for k in RELEASES for p in _PREEMPTS for d in (True, False))


def _host(kernel: str, preempt: str, dynamic: bool) -> str:
    """The host in words: its release, its build and its boot."""
    if dynamic:
        return (
            f"A host runs Linux **{kernel}**, built with `CONFIG_PREEMPT_DYNAMIC` (as most "
            f"distribution kernels are) and booted with `preempt={preempt}`"
        )
    return (
        f"A host runs Linux **{kernel}**, built without `CONFIG_PREEMPT_DYNAMIC`: its "
        f"preemption model is fixed at build time, `{_BUILT[preempt]}` (`{preempt}`)"
    )


class ZapYields(Generator):
    """``zap-yields``: the scene is ``kernel`` (a release from v5.12 to v6.18), ``preempt``
    (``"none"``, ``"voluntary"`` or ``"full"``) and ``dynamic`` (built with
    ``CONFIG_PREEMPT_DYNAMIC``)."""

    kind, salt = "zap-yields", "zap_yields"

    def scene(self, seed: int) -> Scene:
        kernel, preempt, dynamic = _YIELD_CASES[self.case(seed, len(_YIELD_CASES))]
        return Scene(kernel=kernel, preempt=preempt, dynamic=dynamic)

    def answer(self, scene: Scene) -> bool:
        return zap_yields(scene.kernel, scene.preempt, dynamic=scene.dynamic)

    def question(self, scene: Scene) -> str:
        return (
            f"{_host(scene.kernel, scene.preempt, scene.dynamic)}. The NUMA balancer marks a "
            "range of guest memory `PROT_NONE`, so KVM's `invalidate_range_start` zaps the "
            "range's SPTEs (TDP MMU, a notification that may block), holding `mmu_lock` for "
            "write. Halfway through, a vCPU faults on that memory and queues for `mmu_lock` "
            "(for read).\n\nDoes the zap **yield** `mmu_lock` to it, i.e. drop the lock, let the "
            "vCPU in and take it again (`cond_resched_rwlock_write()`)? Answer yes or no."
        )

    def explain(self, scene: Scene, answer: bool) -> str:
        k, preempt, dynamic = scene.kernel, scene.preempt, scene.dynamic
        loop = (
            "The TDP MMU's zap checks at every SPTE whether to yield "
            "(tdp_mmu_iter_cond_resched(): need_resched() || rwlock_needbreak())"
        )
        if not at_least(k, "v5.13"):
            return (
                f"{'Yes' if answer else 'No'}. {loop}, but on {k} a notifier's zap is called "
                "with can_yield = false; e1eed5847b09 (v5.13) let it yield when the "
                "notification may block (range->may_block)."
            )
        preemption = dynamic or preempt == "full"
        needbreak = (
            "rwlock_needbreak() is rwlock_is_contended() only #ifdef CONFIG_PREEMPTION "
            "(a09a689a5341)"
        )
        if not preemption:
            why = (
                f"{needbreak}, and {_BUILT[preempt]} without PREEMPT_DYNAMIC does not set "
                "CONFIG_PREEMPTION: the zap never sees the queued vCPU"
            )
        elif features(k).yield_needs_preemptible:
            why = (
                f"{needbreak}; from c793a62823d1 (v6.11) it also requires "
                "preempt_model_preemptible(), which only preempt=full (or RT) is: with "
                f"preempt={preempt} the zap {'yields' if answer else 'keeps the lock'}"
            )
        elif dynamic:
            why = (
                f"{needbreak}, which a PREEMPT_DYNAMIC build always sets, and before "
                "c793a62823d1 (v6.11) nothing asks which model was booted: the zap yields "
                f"even with preempt={preempt}, the 2024 freeze's hosts"
            )
        else:
            why = f"{needbreak}, which CONFIG_PREEMPT sets: the zap yields"
        return f"{'Yes' if answer else 'No'}. {loop}; {why}."


_ZAP_YIELDS = ZapYields()


def zap_yields_question(seed: int = 0) -> Exercise:
    """Does a long zap yield ``mmu_lock`` to a vCPU that queues for it? Answer: a ``bool``.

    The host is a release from v5.12 to v6.18, a preemption model (``none``, ``voluntary``,
    ``full``) and whether it is built with ``CONFIG_PREEMPT_DYNAMIC``; the answer is
    :func:`kvmviz.kernels.zap_yields` (a09a689a5341, e1eed5847b09, c793a62823d1). Seeds
    ``0 .. 161`` ask each of the 162 hosts once, in a fixed shuffled order.

    The exercise's :attr:`~Exercise.scene` holds what :class:`ZapYields` names.

    Examples
    --------
    >>> q = zap_yields_question(seed=3)
    >>> q.check(q.answer)[0]
    True
    """
    return _ZAP_YIELDS(seed)
