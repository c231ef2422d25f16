"""Engine benchmark: kvmviz against a SimPy implementation of the same simplified model.

The simplified model: N vCPUs loop {run in the guest ~Exp(guest_run_us), exit (half a VM-exit
round trip), resolve the pfn ~Exp(resolve_pfn_us), take ``mmu_lock`` for read, hold it
~Exp(mean read hold), release, re-enter the guest (the other half)}; MMU notifications arrive
as a Poisson process, and each takes the lock for write for a fixed hold with probability
``p_lock``, else skips the lock. The lock is the kernel's fair qrwlock.

Run ``python benchmarks/engine.py`` from anywhere (``--quick`` for a smoke run of a few
seconds, ``--check`` to exit 1 when a goal fails). It prints the machine, then:

(a) both engines on one moderate configuration: lock acquisitions per wall-second and their
    ratio (goal: kvmviz at least 40x SimPy), with sanity checks that the two engines model the
    same thing; then the same at 416 vCPUs, for scale (not judged);
(b) kvmviz on the default scenario (416 vCPUs) for 1 simulated second, on each kernel (goal:
    at most 2 s wall on a 2-core machine);
(c) ``import kvmviz`` plus a first ``simulate()`` in a fresh interpreter (goal: at most 3 s);
(d) the 2024 freeze (``presets.numa_balancing_setup``: 416 vCPUs, PREEMPT_DYNAMIC booted
    ``preempt=voluntary``, a 256 MiB NUMA scan) for 2 simulated seconds on v6.7 (the zap
    yields) and v6.8 (the pre-check), on the compiled event loop (goal: at most 10 s wall
    each, issue 22) and on the Python event engine (a shorter stretch: it is about 10x
    slower), each as a ratio to a reference run in the same process: the same VM on v6.7
    without PREEMPT_DYNAMIC, whose zap does not yield, on the closed loop.

It is a report, not a test: the exit status is 0 whenever it ran, unless ``--check`` is given.
With ``--quick`` the sizes are reduced and only goal (c), whose configuration is fixed, is
judged.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing kvmviz
    sys.path.insert(0, str(ROOT))

import kvmviz as kv  # noqa: E402

GOAL_RATIO = 40.0  # kvmviz lock acquisitions per wall-second over SimPy's
GOAL_SCALE_S = 2.0  # 416 vCPUs for 1 simulated second, on a 2-core machine
GOAL_IMPORT_S = 3.0  # import kvmviz + first simulate(), fresh interpreter
GOAL_FREEZE_S = 10.0  # the freeze, 416 vCPUs x 2 simulated s, per kernel (issue 22)
FREEZE_KERNELS = ("v6.7", "v6.8")
SCALE_VCPUS = 416
KERNEL = "v5.13"  # the kernel of the shared configuration (see kvmviz_scenario)
SEED = 0

FRESH_IMPORT = (
    "import time; t = time.perf_counter(); import kvmviz as kv; "
    "kv.simulate(kv.Scenario(duration_us=20000)); print(time.perf_counter() - t)"
)


# --------------------------------------------------------------------------------------------
# The SimPy implementation.
# --------------------------------------------------------------------------------------------
class QRWLock:
    """A fair reader-writer lock (the kernel's qrwlock) on SimPy events.

    The rules of :mod:`kvmviz.rwlock`'s ``"qrwlock"``: a reader enters at once iff no writer
    holds *or waits*, else it queues FIFO; a writer enters at once iff nobody holds the lock and
    nobody queues, else it queues; when the lock frees up, the head of the queue enters: a
    writer alone once every reader inside has left, or the readers at the head together, up to
    the next queued writer.

    :meth:`request` returns ``None`` when the lock is granted at once (the uncontended fast
    path costs no event), else an event that succeeds when the caller is granted the lock.
    """

    __slots__ = ("env", "queue", "queued_writers", "readers", "writer")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.readers = 0  # readers inside
        self.writer = False  # a writer inside
        self.queue: deque[tuple[simpy.Event, bool]] = deque()  # wait_lock's FIFO
        self.queued_writers = 0

    def request(self, write: bool) -> simpy.Event | None:
        if write:
            if not self.writer and not self.readers and not self.queue:
                self.writer = True
                return None
            self.queued_writers += 1
        elif not self.writer and not self.queued_writers:
            self.readers += 1
            return None
        event = self.env.event()
        self.queue.append((event, write))
        return event

    def release(self, write: bool) -> None:
        if write:
            self.writer = False
        else:
            self.readers -= 1
        queue = self.queue
        while queue and not self.writer:
            event, is_writer = queue[0]
            if is_writer:
                if self.readers:  # it waits for every reader inside to leave
                    return
                queue.popleft()
                self.queued_writers -= 1
                self.writer = True
                event.succeed()
                return
            queue.popleft()
            self.readers += 1
            event.succeed()


@dataclass(frozen=True)
class SimpleModel:
    """Parameters of the simplified model; times in µs."""

    n_vcpus: int
    duration_us: float
    guest_run_us: float  # mean, exponential
    vmexit_us: float  # round trip, half on each side
    resolve_pfn_us: float  # mean, exponential
    read_hold_us: float  # mean, exponential
    notifier_rate_hz: float  # Poisson
    p_lock: float  # share of notifications that take the lock for write
    write_hold_us: float  # fixed


@dataclass(frozen=True)
class Result:
    """What one engine's run is compared on."""

    reads: int  # read acquisitions (fault attempts)
    writes: int  # write acquisitions (notifier callbacks)
    read_wait_mean_us: float
    write_wait_mean_us: float
    retries: int = 0

    @property
    def acquisitions(self) -> int:
        return self.reads + self.writes


def run_simpy(p: SimpleModel, seed: int = SEED) -> Result:
    """Simulate ``p`` with SimPy: one process per vCPU, a Poisson notifier source, one process
    per notification that takes the lock."""
    env = simpy.Environment()
    lock = QRWLock(env)
    rng = random.Random(seed)
    expo = rng.expovariate
    timeout = env.timeout
    half = p.vmexit_us / 2
    duration = p.duration_us
    writes = [0, 0.0]  # acquisitions, summed wait

    def vcpu():
        # The vCPU starts in the guest. It stops once its next EPT violation would come at or
        # after the end of the simulated time; work in flight runs to completion (as kvmviz).
        acquisitions, waited = 0, 0.0
        inv_guest, inv_resolve = 1 / p.guest_run_us, 1 / p.resolve_pfn_us
        mean_hold = p.read_hold_us
        to_exit = expo(inv_guest)  # from now to the next EPT violation
        while env.now + to_exit < duration:
            yield timeout(to_exit + half + expo(inv_resolve))  # guest, exit, resolve the pfn
            wait = lock.request(False)
            if wait is not None:
                asked = env.now
                yield wait
                waited += env.now - asked
            acquisitions += 1
            yield timeout(mean_hold * expo(1.0))  # install the SPTE under the read lock
            lock.release(False)
            to_exit = half + expo(inv_guest)  # re-enter, run in the guest
        return acquisitions, waited

    def writer():
        asked = env.now
        wait = lock.request(True)
        if wait is not None:
            yield wait
        writes[0] += 1
        writes[1] += env.now - asked
        yield timeout(p.write_hold_us)
        lock.release(True)

    def notifier_source():
        rate_per_us = p.notifier_rate_hz * 1e-6
        if rate_per_us <= 0:
            return
        while True:
            yield timeout(expo(rate_per_us))
            if env.now >= duration:
                return
            if rng.random() < p.p_lock:
                env.process(writer())

    vcpus = [env.process(vcpu()) for _ in range(p.n_vcpus)]
    env.process(notifier_source())
    env.run()  # until every vCPU has stopped and every writer has left
    reads = sum(v.value[0] for v in vcpus)
    read_wait = sum(v.value[1] for v in vcpus)
    return Result(
        reads=reads,
        writes=writes[0],
        read_wait_mean_us=read_wait / reads if reads else 0.0,
        write_wait_mean_us=writes[1] / writes[0] if writes[0] else 0.0,
    )


# --------------------------------------------------------------------------------------------
# The kvmviz side: a Scenario that reduces kvmviz's model to the simplified one.
# --------------------------------------------------------------------------------------------
def kvmviz_scenario(n_vcpus: int, duration_us: float) -> kv.Scenario:
    """The shared configuration, as a kvmviz Scenario (run it on ``KERNEL``, qrwlock).

    How each part of the simplified model maps onto kvmviz (v5.13, qrwlock):

    * vCPUs: ``faulting_share=1`` makes every vCPU fault. Guest run, VM exit, pfn resolve and
      read hold are the same exponential draws; the mean read hold is
      ``Scenario.mean_read_hold_us`` (read_hold_us + read_hold_per_vcpu_us * N), defaults kept.
    * Notifications: a Poisson stream at ``notifier_rate_hz`` (kvmviz draws a Poisson count and
      uniform times, the same process). With ``spurious_pair_share=0`` every spurious event is
      one unpaired aging call on the VMM's own heap: it misses every memslot, so on v5.13 it
      skips the lock (8931a454ae). With ``relevant_mix=(0, 0, 1)`` every other event is one
      aging call on a guest page: it hits, so it takes the lock for write. Hence
      ``p_lock = 1 - spurious_share``, and there are no start/change_pte/end page moves.
    * Write hold: a locked aging call holds ``lock_op_us + memslot walk + age_us``, plus a TLB
      flush for clear_flush_young only; the flush is zeroed so every write hold is the same
      fixed time, which the SimPy side uses (checked against the run's table).

    What remains different: kvmviz also draws an hva per fault and checks
    ``mmu_notifier_retry_hva()`` on every grant, but aging callbacks never change
    ``mmu_notifier_count`` or ``mmu_notifier_seq``, so no attempt retries here (checked); it
    tests every callback's range against the memslots and charges the missing ones their walk
    outside the lock (no effect on the lock); it records every attempt and callback in
    DataFrames where the SimPy program keeps counters; the two draw different random numbers,
    so they agree in distribution, not run for run.

    ``spurious_share=0.5`` (default 0.95) gives enough writers (about 1,000 a second) for the
    mean reader waits to be worth comparing; ``age_us=10`` (free) makes each write long enough
    to be seen.
    """
    return kv.Scenario(
        n_vcpus=n_vcpus,
        duration_us=duration_us,
        faulting_share=1.0,
        notifier_rate_hz=2_000.0,
        spurious_share=0.5,
        spurious_pair_share=0.0,
        relevant_mix=(0.0, 0.0, 1.0),
        tlb_flush_base_us=0.0,
        tlb_flush_per_vcpu_us=0.0,
        age_us=10.0,
    )


def simple_model(s: kv.Scenario) -> SimpleModel:
    """The simplified model that :func:`kvmviz_scenario` ``s`` reduces to."""
    walk_us = len(s.layout) * s.memslot_walk_ns * 1e-3  # the linear memslot walk (pre-v5.17)
    return SimpleModel(
        n_vcpus=s.n_faulting,
        duration_us=s.duration_us,
        guest_run_us=s.guest_run_us,
        vmexit_us=s.vmexit_us,
        resolve_pfn_us=s.resolve_pfn_us,
        read_hold_us=s.mean_read_hold_us,
        notifier_rate_hz=s.notifier_rate_hz,
        p_lock=1.0 - s.spurious_share,
        write_hold_us=s.lock_op_us + walk_us + s.age_us,
    )


def run_kvmviz(s: kv.Scenario, kernel: str = KERNEL, seed: int = SEED) -> kv.Run:
    return kv.simulate(s, kernel=kernel, seed=seed)


def kvmviz_result(run: kv.Run) -> Result:
    faults, notifiers = run.faults, run.notifiers
    locked = notifiers["locked"].to_numpy()
    return Result(
        reads=len(faults),
        writes=int(locked.sum()),
        read_wait_mean_us=float(faults["wait_us"].mean()) if len(faults) else 0.0,
        write_wait_mean_us=float(notifiers["wait_us"].to_numpy()[locked].mean())
        if locked.any()
        else 0.0,
        retries=int(faults["retry"].sum()),
    )


# --------------------------------------------------------------------------------------------
# Timing and printing.
# --------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], repeats: int, warmup: int = 0) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` calls of ``fn`` (after a gc) and the last call's value.

    ``warmup`` calls run first, untimed: the first runs in a process pay for fresh memory
    (on this virtualised host a 4 KiB page fault costs about 8 µs) and numba's cache load.
    """
    for _ in range(warmup):
        fn()
    walls, value = [], None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        walls.append(time.perf_counter() - t0)
    return walls, value


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 0


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def print_machine() -> None:
    print("Machine")
    print(f"  platform  {platform.platform()}")
    print(f"  cpu       {cpu_model()}")
    print(f"  nproc     {nproc()}   (load average {load()})")
    print(f"  python    {platform.python_version()} ({sys.executable})")
    print(f"  numpy {np.__version__}, pandas {pd.__version__}, simpy {simpy.__version__}")
    print(f"  kvmviz    {kv.__version__} from {Path(kv.__file__).parent}")


ROW = "{:<8} {:>10} {:>13} {:>9} {:>13}   {}"


def row(engine: str, duration_us: float, acquisitions: int, walls: list[float]) -> str:
    best = min(walls)
    runs = " ".join(f"{w:.3f}" for w in walls)
    return ROW.format(
        engine,
        f"{duration_us / 1e3:.1f} ms",
        f"{acquisitions:,}",
        f"{best:.3f}",
        f"{acquisitions / best:,.0f}",
        f"(best of {len(walls)}: {runs})",
    )


def compare(n_vcpus: int, duration_us: float, kv_repeats: int, simpy_repeats: int) -> float:
    """Run both engines on the shared configuration, print the table and checks; the ratio."""
    s = kvmviz_scenario(n_vcpus, duration_us)
    p = simple_model(s)
    kv_walls, run = timed(lambda: run_kvmviz(s), kv_repeats, warmup=1)
    kv_res = kvmviz_result(run)
    sp_walls, sp_res = timed(lambda: run_simpy(p), simpy_repeats)

    print(f"  {n_vcpus} vCPUs, {duration_us / 1e3:g} ms simulated, {KERNEL}, qrwlock, seed {SEED}")
    print(
        f"  notifications {p.notifier_rate_hz:g}/s, p_lock {p.p_lock:g}, write hold "
        f"{p.write_hold_us:.4g} µs; mean read hold {p.read_hold_us:.4g} µs"
    )
    print(
        "  "
        + ROW.format("engine", "simulated", "acquisitions", "wall s", "acq/wall-s", "").rstrip()
    )
    print("  " + row("kvmviz", duration_us, kv_res.acquisitions, kv_walls))
    print("  " + row("SimPy", duration_us, sp_res.acquisitions, sp_walls))
    ratio = (kv_res.acquisitions / min(kv_walls)) / (sp_res.acquisitions / min(sp_walls))

    # Sanity: the two engines simulate the same thing.
    holds = run.notifiers.loc[run.notifiers["locked"], "hold_us"].to_numpy()
    same_hold = holds.size == 0 or bool(np.allclose(holds, p.write_hold_us, rtol=1e-9))
    expected_writes = p.notifier_rate_hz * duration_us * 1e-6 * p.p_lock
    w_kv, w_sp = kv_res.read_wait_mean_us, sp_res.read_wait_mean_us
    same_order = (w_kv == w_sp == 0) or (min(w_kv, w_sp) > 0 and 0.5 <= w_kv / w_sp <= 2)
    print("  sanity checks (kvmviz vs SimPy; statistical agreement, not equality)")
    print(
        f"    read acquisitions       {kv_res.reads:>10,} vs {sp_res.reads:>10,}"
        f"   ({kv_res.reads / sp_res.reads - 1:+.2%})"
    )
    print(
        f"    write acquisitions      {kv_res.writes:>10,} vs {sp_res.writes:>10,}"
        f"   (expected {expected_writes:,.0f})"
    )
    print(
        f"    mean reader wait, µs    {w_kv:>10.4g} vs {w_sp:>10.4g}"
        f"   same order: {'yes' if same_order else 'NO'}"
    )
    print(
        f"    mean writer wait, µs    {kv_res.write_wait_mean_us:>10.4g} vs "
        f"{sp_res.write_wait_mean_us:>10.4g}"
    )
    print(f"    kvmviz retries          {kv_res.retries:>10,}   (expected 0 with aging calls only)")
    print(
        f"    kvmviz write holds      {'all' if same_hold else 'NOT all'} = SimPy's "
        f"{p.write_hold_us:.6g} µs"
    )
    if not (same_order and same_hold and kv_res.retries == 0):
        print("    WARNING: the two engines do not model the same thing; the ratio is suspect")
    return ratio


def scale(kernels: tuple[str, ...], duration_us: float, repeats: int) -> dict[str, float]:
    """kvmviz on the default scenario with 416 vCPUs; best wall time per kernel."""
    s = kv.Scenario(n_vcpus=SCALE_VCPUS, duration_us=duration_us)
    print(
        f"  kvmviz, default Scenario: {SCALE_VCPUS} vCPUs ({s.n_faulting} faulting), "
        f"{duration_us / 1e3:g} ms simulated, qrwlock, seed {SEED}"
    )
    print(
        "  "
        + ROW.format("kernel", "simulated", "acquisitions", "wall s", "acq/wall-s", "").rstrip()
    )
    best = {}
    for kernel in kernels:
        walls, run = timed(lambda k=kernel: run_kvmviz(s, k), repeats)
        res = kvmviz_result(run)
        print("  " + row(kernel, duration_us, res.acquisitions, walls))
        best[kernel] = min(walls)
    return best


FREEZE_ROW = "{:<34} {:>6} {:>9} {:>11} {:>8} {:>12} {:>10}   {}"


def freeze_row(engine: str, kernel: str, duration_us: float, run: kv.Run, walls, ref: float):
    """One engine's line: its best wall time, attempts per wall-second, and that rate as a
    multiple of the reference's (``ref``, attempts per wall-second)."""
    best = min(walls)
    rate = len(run.faults) / best
    return FREEZE_ROW.format(
        engine,
        kernel,
        f"{duration_us / 1e3:g} ms",
        f"{len(run.faults):,}",
        f"{best:.3f}",
        f"{rate:,.0f}",
        f"{rate / ref:.3f}x",
        f"(best of {len(walls)}: {' '.join(f'{w:.3f}' for w in walls)})",
    )


def freeze(n_vcpus: int, duration_us: float, events_us: float, repeats: int) -> dict[str, float]:
    """The 2024 freeze on each of FREEZE_KERNELS: the compiled event loop over ``duration_us``
    and the Python event engine over ``events_us``; best wall time of the compiled one per
    kernel."""
    vm = kv.presets.numa_balancing_setup(n_vcpus=n_vcpus, duration_us=duration_us)

    def run(scenario, kernel, method):
        limit = max(kv.engine.MAX_RECORDS, 4 * kv.engine.estimate(scenario).records)
        return kv.simulate(scenario, kernel, seed=SEED, method=method, max_records=limit)

    print(
        f"  presets.numa_balancing_setup: {n_vcpus} vCPUs, preempt={vm.preempt}, "
        f"PREEMPT_DYNAMIC, a {vm.numa_scan_size_mib:g} MiB scan every "
        f"{vm.numa_scan_period_ms:g} ms from {vm.numa_scan_delay_ms:g} ms, qrwlock, seed {SEED}"
    )
    print(
        "  "
        + FREEZE_ROW.format(
            "engine", "kernel", "simulated", "attempts", "wall s", "attempts/s", "x ref", ""
        ).rstrip()
    )
    run(vm.replace(duration_us=10_000.0), "v6.8", "compiled")  # numba's cache, warm memory
    still = vm.replace(preempt_dynamic=False)
    walls, reference = timed(lambda: run(still, "v6.7", "compiled"), repeats)
    ref = len(reference.faults) / min(walls)
    print(
        "  "
        + freeze_row("reference: closed loop, no yield", "v6.7", duration_us, reference, walls, ref)
    )
    best = {}
    for kernel in FREEZE_KERNELS:
        walls, compiled = timed(lambda k=kernel: run(vm, k, "compiled"), repeats)
        print("  " + freeze_row("compiled event loop", kernel, duration_us, compiled, walls, ref))
        best[kernel] = min(walls)
        short = vm.replace(duration_us=events_us)
        walls, events = timed(lambda k=kernel, s=short: run(s, k, "events"), 1)
        print("  " + freeze_row("Python event engine", kernel, events_us, events, walls, ref))
    return best


def fresh_import() -> float | None:
    """Seconds to import kvmviz and run a first simulate() in a new interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_IMPORT],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        print(proc.stderr.rstrip(), file=sys.stderr)
        return None
    return float(proc.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--check", action="store_true", help="exit 1 if a judged goal fails")
    args = parser.parse_args(argv)
    quick = args.quick
    goals: list[tuple[str, str, str]] = []  # (goal, measured, verdict)
    t_start = time.perf_counter()

    print_machine()
    if nproc() != 2:
        print(f"  note: the scale goal is stated for a 2-core machine; this one has {nproc()}")
    if quick:
        print("  --quick: reduced sizes; only goal (c) is judged")

    # (a) Both engines, one configuration.
    n, duration = (64, 200_000.0) if quick else (64, 2_000_000.0)
    print("\n(a) kvmviz and SimPy on the same simplified model")
    ratio = compare(n, duration, kv_repeats=1 if quick else 5, simpy_repeats=1 if quick else 2)
    judged = not quick
    print(
        f"ratio kvmviz/SimPy: {ratio:.2f}x  (goal >= {GOAL_RATIO:g}x)  "
        + (verdict(ratio >= GOAL_RATIO) if judged else "not judged at --quick sizes")
    )
    goals.append(
        (
            f"kvmviz/SimPy >= {GOAL_RATIO:g}x ({n} vCPUs, {duration / 1e6:g} s)",
            f"{ratio:.2f}x",
            verdict(ratio >= GOAL_RATIO) if judged else "n/a",
        )
    )
    if not quick:
        print(f"\n(a') the same at {SCALE_VCPUS} vCPUs, for scale (not judged)")
        ratio_big = compare(SCALE_VCPUS, 250_000.0, kv_repeats=5, simpy_repeats=1)
        print(f"ratio kvmviz/SimPy at {SCALE_VCPUS} vCPUs: {ratio_big:.2f}x  (not judged)")

    # (b) Scale: 416 vCPUs for 1 simulated second, per kernel.
    duration = 100_000.0 if quick else 1_000_000.0
    print(f"\n(b) Scale (goal: <= {GOAL_SCALE_S:g} s wall for 1 simulated second)")
    best = scale(kv.KERNELS, duration, repeats=1 if quick else 3)
    for kernel, wall in best.items():
        goals.append(
            (
                f"{SCALE_VCPUS} vCPUs x 1 s <= {GOAL_SCALE_S:g} s, {kernel}",
                f"{wall:.3f} s" + (f" ({duration / 1e6:g} s sim)" if quick else ""),
                verdict(wall <= GOAL_SCALE_S) if not quick else "n/a",
            )
        )

    # (c) Fresh interpreter.
    print(f"\n(c) Fresh interpreter (goal: <= {GOAL_IMPORT_S:g} s)")
    print(f"  {sys.executable} -c '{FRESH_IMPORT}'")
    first = fresh_import()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("  note: PYTHONDONTWRITEBYTECODE is set: every import compiles from source")
    goal = f"import + first simulate <= {GOAL_IMPORT_S:g} s"
    if first is None:
        print("  the subprocess failed (stderr above)")
        goals.append((goal, "failed", "FAIL"))
    else:
        result = verdict(first <= GOAL_IMPORT_S)
        print(f"  import kvmviz + first simulate(): {first:.3f} s  {result}")
        goals.append((goal, f"{first:.3f} s", result))

    # (d) The 2024 freeze, today's kernels.
    n, duration, events_us = (64, 20_000.0, 20_000.0) if quick else (416, 2e6, 1e5)
    print(f"\n(d) The 2024 freeze (goal: <= {GOAL_FREEZE_S:g} s wall for 2 simulated seconds)")
    best = freeze(n, duration, events_us, repeats=1 if quick else 2)
    for kernel, wall in best.items():
        goals.append(
            (
                f"freeze {SCALE_VCPUS} vCPUs x 2 s <= {GOAL_FREEZE_S:g} s, {kernel}",
                f"{wall:.3f} s" + (f" ({n} vCPUs, {duration / 1e6:g} s)" if quick else ""),
                verdict(wall <= GOAL_FREEZE_S) if not quick else "n/a",
            )
        )

    print("\nGoals")
    for name, measured, outcome in goals:
        print(f"  {name:<40} {measured:>19}  {outcome}")
    print(f"(total {time.perf_counter() - t_start:.1f} s; load average now {load()})")
    failed = any(outcome == "FAIL" for _, _, outcome in goals)
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
