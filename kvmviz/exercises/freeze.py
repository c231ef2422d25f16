"""The 2024 freeze as exercises (chapter 08): does this zap yield ``mmu_lock`` (``zap-yields``),
does this fault take ``mmu_lock`` under the lockless pre-check (``precheck-lock``), and how
many read acquisitions of ``mmu_lock`` end in a retry on v6.7 and on v6.8 (``futile-reads``).

Each answer comes from the model: :func:`kvmviz.kernels.zap_yields` (the kernel and its
preemption model), :func:`kvmviz.kernels.features` with
:func:`kvmviz.classify.mmu_notifier_retry_hva` (d02c357e5bfa's
``mmu_invalidate_retry_gfn_unsafe()`` is the same check, made before the lock) and two runs of
:func:`kvmviz.simulate` on :data:`FREEZE_SCENE`.
"""

from __future__ import annotations

from .._shared._checks import check_seed
from ..inputs import presets
from ..inputs.kernels import RELEASES, at_least, features, zap_yields
from ..inputs.memslots import Memslot, MemslotLayout
from ..model.classify import mmu_notifier_retry_hva
from .base import Exercise, Generator, Scene

__all__ = ["FREEZE_SCENE", "futile_reads", "precheck_lock", "zap_yields_question"]

# The build option each preemption model is, on a kernel without CONFIG_PREEMPT_DYNAMIC.
_BUILT = {
    "none": "CONFIG_PREEMPT_NONE",
    "voluntary": "CONFIG_PREEMPT_VOLUNTARY",
    "full": "CONFIG_PREEMPT",
}
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


# -- precheck-lock -------------------------------------------------------------------------------
# What the counters say when the fault checks, as (in flight over the gfn, seq moved): the
# pre-check retries on either; a range with nothing in progress is stale and is not looked at.
_PRECHECK_CASES = ("inside", "outside", "moved", "stale", "both")
_PRECHECK_KERNELS = tuple(k for k in RELEASES if at_least(k, "v6.0"))


class PrecheckLock(Generator):
    """``precheck-lock``: the scene is ``kernel`` (v6.0 to v6.18), ``gfn`` (the fault's),
    ``seq`` (the ``mmu_invalidate_seq`` it sampled), ``count`` (``mmu_invalidate_in_progress``
    when it checks), ``lo, hi`` (the invalidated gfn range, end exclusive) and ``seq_now``."""

    kind, salt = "precheck-lock", "precheck_lock"

    def scene(self, seed: int) -> Scene:
        rng = self.rng(seed)
        kernel = _PRECHECK_KERNELS[rng.integers(len(_PRECHECK_KERNELS))]
        case = _PRECHECK_CASES[rng.integers(len(_PRECHECK_CASES))]
        lo = int(rng.integers(0x100, 0x80000)) & ~0x1FF  # 2 MiB aligned, as the balancer's
        hi = lo + 512 * int(rng.integers(1, 129))  # 2 MiB to 256 MiB
        seq = int(rng.integers(2, 5000))
        inside = case in ("inside", "stale", "both")
        gfn = (
            int(rng.integers(lo, hi))
            if inside
            else int(rng.choice([rng.integers(max(lo - 4096, 0), lo), rng.integers(hi, hi + 4096)]))
        )
        count = int(rng.integers(1, 3)) if case in ("inside", "outside", "both") else 0
        seq_now = seq + (int(rng.integers(1, 4)) if case in ("moved", "both") else 0)
        return Scene(kernel=kernel, gfn=gfn, seq=seq, count=count, lo=lo, hi=hi, seq_now=seq_now)

    def answer(self, scene: Scene) -> bool:
        if not features(scene.kernel).precheck:
            return True  # no check before the lock: mmu_invalidate_retry*() runs under it
        retry = mmu_notifier_retry_hva(
            scene.count, scene.lo, scene.hi, scene.gfn, scene.seq_now, scene.seq
        )
        return not retry

    def question(self, scene: Scene) -> str:
        f = features(scene.kernel)
        # From 8569992d64b8 (v6.8) the range is kept in gfns; before, in the hvas of the same
        # pages: the question names the pages by their gfns either way.
        tracked = "" if f.retry_range == "gfn" else ", kept as the hvas of these pages"
        return (
            f"A host runs **{scene.kernel}** (TDP MMU). A vCPU takes an EPT violation on gfn "
            f"{scene.gfn:#x}, in a memslot. It samples `{f.seq_name}` = {scene.seq}, then "
            "resolves the page outside `mmu_lock`. Right after that, the counters read: "
            f"`{f.count_name}` = {scene.count}; the invalidated range "
            f"(`mmu_invalidate_range_start` / `_end`{tracked}) covers gfns [{scene.lo:#x}, "
            f"{scene.hi:#x}); `{f.seq_name}` = {scene.seq_now}.\n\nDoes this fault go on to "
            "take `mmu_lock` (for read)? Answer yes or no."
        )

    def explain(self, scene: Scene, answer: bool) -> str:
        f = features(scene.kernel)
        if not f.precheck:
            return (
                f"{'Yes' if answer else 'No'}. {scene.kernel} has no lockless pre-check: every "
                "fault takes mmu_lock for read and only then calls mmu_invalidate_retry_hva() "
                "(the check is authoritative under the lock); the pre-check "
                "mmu_invalidate_retry_gfn_unsafe() came with d02c357e5bfa in v6.8."
            )
        in_flight = scene.count != 0 and scene.lo <= scene.gfn < scene.hi
        moved = scene.seq_now != scene.seq
        if in_flight and moved:
            why = "an invalidation in progress covers the gfn, and seq moved too"
        elif in_flight:
            why = "an invalidation in progress covers the gfn"
        elif moved:
            why = f"seq moved ({scene.seq} -> {scene.seq_now}): an invalidation ended meanwhile"
        elif scene.count != 0:
            why = "the invalidation in progress does not cover the gfn and seq did not move"
        else:
            why = (
                f"{f.count_name} is 0, so the range is stale and not looked at, and seq did not "
                "move"
            )
        verdict = (
            "it retries without touching mmu_lock (RET_PF_RETRY: the vCPU re-enters the "
            "guest and faults again)"
            if not answer
            else "it goes on to take mmu_lock for read, where the check is made again"
        )
        return (
            f"{'Yes' if answer else 'No'}. From d02c357e5bfa (v6.8) kvm_faultin_pfn() calls "
            "mmu_invalidate_retry_gfn_unsafe() after sampling seq and again after resolving "
            f"the pfn: retry if {f.count_name} != 0 and range_start <= gfn < range_end, or if "
            f"{f.seq_name} moved. Here {why}: {verdict}."
        )


_PRECHECK_LOCK = PrecheckLock()


def precheck_lock(seed: int = 0) -> Exercise:
    """Does this fault take ``mmu_lock`` under the lockless pre-check? Answer: a ``bool``.

    A fault on a v6.x host has sampled ``mmu_invalidate_seq`` and resolved its pfn; the
    question gives the counters it sees then (in progress, the invalidated gfn range, seq).
    From d02c357e5bfa (v6.8) ``mmu_invalidate_retry_gfn_unsafe()`` sends it back to the guest
    without touching ``mmu_lock`` if an invalidation in progress covers its gfn or seq moved;
    before v6.8 every fault takes the lock and checks under it. The answer is
    :func:`kvmviz.kernels.features` (``precheck``) with the retry rule of
    :func:`kvmviz.classify.mmu_notifier_retry_hva`.

    The exercise's :attr:`~Exercise.scene` holds what :class:`PrecheckLock` names.

    Examples
    --------
    >>> q = precheck_lock(seed=2)
    >>> q.check(q.answer)[0]
    True
    """
    return _PRECHECK_LOCK(seed)


# -- futile-reads ------------------------------------------------------------------------------
def _small_guest() -> MemslotLayout:
    """64 MiB of guest RAM in one memslot at gfn 0x100, backed by one anonymous mapping."""
    return MemslotLayout([Memslot(0, 0x100, (64 << 20) >> 12, 0x7F0000000000)])


FREEZE_SCENE = presets.numa_balancing_setup(
    n_vcpus=4, layout=_small_guest(), guest_run_us=20.0, duration_us=3000.0, numa_scan_size_mib=16.0
)
"""The freeze, small enough to count by hand in a timeline: 4 vCPUs touching 64 MiB of guest
RAM every 20 µs on average, one NUMA-balancing scan over 16 MiB of it at 0.5 ms, 3 ms in all;
PREEMPT_DYNAMIC with ``preempt=voluntary`` (:func:`kvmviz.presets.numa_balancing_setup`)."""
# Scenes where the zap always meets some vCPU on its range: at least 3 vCPUs touching a page
# every 20 µs or more often, a scan of a quarter of the RAM or more (tests/test_exercises.py
# checks v6.7's futile reads over seeds 0..99).
_FUTILE_VCPUS = (3, 4, 5, 6)
_FUTILE_RUN_US = (10.0, 15.0, 20.0)
_FUTILE_SCAN_MIB = (16.0, 24.0, 32.0, 48.0)
_FUTILE_KERNELS = ("v6.7", "v6.8")


class FutileReads(Generator):
    """``futile-reads``: the scene is ``scenario`` (:data:`FREEZE_SCENE` with the drawn
    ``n_vcpus``, ``guest_run_us`` and ``numa_scan_size_mib``), ``changes`` (those three, as
    ``FREEZE_SCENE.replace`` takes them), ``seed`` (the runs') and ``runs`` (the run on each
    of v6.7 and v6.8, :func:`kvmviz.experiments.kernel_runs`)."""

    kind, salt = "futile-reads", "futile_reads"

    def scene(self, seed: int) -> Scene:
        from ..stats.experiments import kernel_runs

        seed = check_seed(seed)
        rng = self.rng(seed)
        changes = {
            "n_vcpus": int(rng.choice(_FUTILE_VCPUS)),
            "guest_run_us": float(rng.choice(_FUTILE_RUN_US)),
            "numa_scan_size_mib": float(rng.choice(_FUTILE_SCAN_MIB)),
        }
        scenario = FREEZE_SCENE.replace(**changes)
        runs = kernel_runs(scenario, seed=seed, kernels=_FUTILE_KERNELS)  # one call, two runs
        return Scene(scenario=scenario, changes=changes, seed=seed, runs=runs)

    def answer(self, scene: Scene) -> list:
        return [int(scene.runs[k].faults["retry"].sum()) for k in _FUTILE_KERNELS]

    @staticmethod
    def make(scene: Scene, kernel: str) -> str:
        """The expression that simulates the run asked about on ``kernel``."""
        changes = ", ".join(f"{name}={value!r}" for name, value in scene.changes.items())
        return (
            f"kv.simulate(kv.exercises.FREEZE_SCENE.replace({changes}), '{kernel}', "
            f"seed={scene.seed})"
        )

    def question(self, scene: Scene) -> str:
        s = scene.scenario
        return (
            f"The VM `kv.exercises.FREEZE_SCENE` with {s.n_vcpus} vCPUs, each touching a random "
            f"page of its {s.layout.total_pages * 4 // 1024} MiB of RAM every "
            f"{s.guest_run_us:g} µs on average; at {s.numa_scan_delay_ms:g} ms the NUMA "
            f"balancer marks {s.numa_scan_size_mib:g} MiB of it `PROT_NONE`, so KVM zaps that "
            "range under `mmu_lock` for write. The host is PREEMPT_DYNAMIC, booted "
            f"`preempt={s.preempt}`, so the zap yields the lock whenever a vCPU queues. The "
            f"runs: `{self.make(scene, 'v6.7')}` and the same on `'v6.8'`.\n\nHow many read "
            "acquisitions of `mmu_lock` end in a retry (granted, the fault finds its page being "
            "invalidated or seq moved, lets go and faults again) on **v6.7**, and how many on "
            "**v6.8**? Count them in each run (`run.faults.retry`), or in a Perfetto export "
            "(`kv.to_perfetto(run, 'futile.json')`: the `holding mmu_lock (read)` slices whose "
            "args say `retry`). Answer with two numbers, v6.7 first, e.g. `120 3`."
        )

    def explain(self, scene: Scene, answer: list) -> str:
        on7, on8 = answer
        v68 = scene.runs["v6.8"].faults
        spins = int(v68["spins"].sum()) if "spins" in v68 else 0
        return (
            f"{on7} on v6.7, {on8} on v6.8: `run.faults.retry.sum()` of each run. On v6.7 a "
            "fault whose page is being zapped takes mmu_lock for read only to find the range "
            "in flight (mmu_invalidate_retry_hva()) and let go; each such read makes the "
            "yielding zap give the lock up again. On v6.8 d02c357e5bfa checks before the lock "
            f"(mmu_invalidate_retry_gfn_unsafe()): those faults spin without it ({spins:,} "
            "lockless retries in this run) and only the rare fault whose seq moved between "
            "the pre-check and the lock still retries under it."
        )


_FUTILE_READS = FutileReads()


def futile_reads(seed: int = 0) -> Exercise:
    """How many read acquisitions end in a retry on v6.7, and on v6.8? Answer: two ``int``.

    The scene is :data:`FREEZE_SCENE` with a seed-drawn number of vCPUs, touch rate and scan
    size, simulated on v6.7 and on v6.8 with the seed (two short runs); the answer is
    ``[run.faults.retry.sum() on v6.7, ... on v6.8]``: the futile reads the lockless pre-check
    (d02c357e5bfa) takes away. The scenes are drawn where the zap always meets vCPUs on its
    range (at least 3 vCPUs, a quarter of the RAM scanned or more).

    The exercise's :attr:`~Exercise.scene` holds what :class:`FutileReads` names.

    Examples
    --------
    >>> q = futile_reads(seed=1)
    >>> q.check(q.answer)[0]
    True
    """
    return _FUTILE_READS(seed)
