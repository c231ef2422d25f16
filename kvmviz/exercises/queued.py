"""Who queued behind whom for ``mmu_lock`` (chapter 07's ``queued-behind``, the arrows Perfetto
draws): how many fault attempts queued behind one waiting callback of a run, read off
``run.faults.blocked_by``."""

from __future__ import annotations

import numpy as np

from .._shared._checks import check_seed
from ..inputs import presets
from ..inputs.scenario import Scenario
from .base import Exercise, Generator, Scene

__all__ = ["QUEUE_SCENE", "queued_behind"]

# A fault storm on eight vCPUs (the tests' busy8): writers wait, readers queue behind them.
QUEUE_SCENE = presets.STORM_VM
_QUEUE_KERNEL = "v5.12"


def _scene_text(scenario: Scenario) -> str:
    """A scenario in words: its size and load, then every field that differs from
    ``Scenario()``, as ``Scenario(...)`` would take it."""
    from dataclasses import fields

    default = Scenario()
    changed = ", ".join(
        f"{f.name}={getattr(scenario, f.name)!r}"
        for f in fields(Scenario)
        if f.name != "layout" and getattr(scenario, f.name) != getattr(default, f.name)
    )
    layout = "" if scenario.layout == default.layout else f"; memslots {scenario.layout!r}"
    return (
        f"{scenario.n_vcpus} vCPUs, {scenario.faulting_share:.0%} of them faulting, "
        f"{scenario.guest_run_us:g} µs in the guest between faults on average, "
        f"{scenario.notifier_rate_hz:,.0f} notification events per second "
        f"({scenario.spurious_share:.0%} of them spurious), {scenario.duration_us / 1000:g} ms"
        f"{layout}; `kv.Scenario({changed})`"
    )


# Whom a fault attempt queues behind, by lock (Run.faults, blocked_by): the question says it.
_BEHIND = {
    "qrwlock": "Under the qrwlock a fault attempt that cannot read-lock at once queues behind "
    "the newest callback that asked for `mmu_lock` before it and has not released it yet "
    "(that writer closed the door: `queued_read_lock_slowpath`), and is granted when that "
    "callback releases. So count the attempts that asked for the lock after this callback "
    "asked and before it released, with no other callback asking in between.",
    "reader-pref": "Under a reader-preferring lock a fault attempt waits only for the callback "
    "*holding* the lock. So count the attempts that asked for the lock while this callback "
    "held it.",
    "fifo": "Here faults take `mmu_lock` for write too, and everyone queues in arrival order: "
    "a fault attempt queues behind the newest callback ahead of it in the queue. So count the "
    "attempts that asked for the lock after this callback asked and before it released, with "
    "no other callback asking in between.",
}


class QueuedBehind(Generator):
    """``queued-behind``: the scene is ``run`` (the run asked about), ``about`` (how to get it,
    in words), ``make`` (the expression that simulates it, or ``None`` for a run passed in),
    ``window`` (the arrivals picked among, or ``None``) and ``pick``, the row of
    ``run.notifiers`` asked about."""

    kind, salt = "queued-behind", "queued_behind"

    def scene(
        self,
        seed: int,
        run=None,
        window: tuple[float, float] | None = None,
        about: str | None = None,
    ) -> Scene:
        seed = check_seed(seed)
        run, about, make = self._run(seed, run, about)
        n = run.notifiers
        locked = n["locked"].to_numpy(dtype=bool)
        arrive = n["t_arrive_us"].to_numpy(dtype=float)
        grant = n["t_grant_us"].to_numpy(dtype=float)
        pool = np.flatnonzero(locked & (np.nan_to_num(grant) > arrive))
        if window is not None:
            start, end = (float(x) for x in window)
            pool = pool[(arrive[pool] >= start) & (arrive[pool] < end)]
        if pool.size == 0:
            where = "" if window is None else f" arriving in [{window[0]:g}, {window[1]:g}) µs"
            raise ValueError(f"no callback{where} waited for mmu_lock on {run.kernel}")
        blocked = run.faults["blocked_by"].to_numpy()
        followed = pool[np.isin(pool, blocked)]  # a queue of nobody asks nothing: skip it if we can
        pool = followed if followed.size else pool
        pick = int(pool[self.case(seed, pool.size)])
        return Scene(seed=seed, run=run, about=about, make=make, window=window, pick=pick)

    @staticmethod
    def _run(seed: int, run, about: str | None) -> tuple:
        """The run, the question's words for it, and the expression that simulates it (or
        ``None`` for a run passed in)."""
        if run is None:
            from ..model.engine import simulate

            run = simulate(QUEUE_SCENE, _QUEUE_KERNEL, seed=seed)
            make = f"kv.simulate(kv.exercises.QUEUE_SCENE, '{_QUEUE_KERNEL}', seed={seed})"
            about = (
                f"`kvmviz.exercises.QUEUE_SCENE` ({_scene_text(QUEUE_SCENE)}), simulated on "
                f"**{run.kernel}**, lock {run.policy}, seed {seed}: `{make}`"
            )
            return run, about, make
        about = (
            f"{about} (**{run.kernel}**, lock {run.policy}, seed {run.seed})"
            if about is not None
            else (
                f"the run passed as `run=`: **{run.kernel}**, lock {run.policy}, seed "
                f"{run.seed}, on {_scene_text(run.scenario)}"
            )
        )
        return run, about, None

    def answer(self, scene: Scene) -> int:
        return int((scene.run.faults["blocked_by"].to_numpy() == scene.pick).sum())

    @staticmethod
    def _policy(scene: Scene) -> str:
        """The key of :data:`_BEHIND` that says whom an attempt queues behind on this run."""
        run = scene.run
        policy = run.policy if run.policy == "reader-pref" else "qrwlock"
        if run.scenario.faults_write(run.policy):
            policy = "fifo"
        return policy

    @staticmethod
    def _look(scene: Scene) -> str:
        """How to look outside a notebook: Perfetto's arrows, or the acquisitions around it."""
        row = scene.run.notifiers.iloc[scene.pick]
        release = float(row["t_release_us"])
        # Bounds rounded outwards to the ns, so no request of the stretch is cut off.
        lo, hi = np.floor(row["t_arrive_us"] * 1000) / 1000, np.ceil(release * 1000) / 1000
        lock_rows = f"lock[lock.t_request_us.between({lo:.3f}, {hi:.3f})]"
        make = scene.make
        if make is None:
            return (
                "To look: `kv.to_perfetto(run, 'queued.pftrace', window=...)` and Perfetto's "
                "arrows leaving its `waiting for mmu_lock (write)` slice, or every request for "
                f"`mmu_lock` from its request to its release: `lock = run.lock; {lock_rows}`."
            )
        trace = f"queued-behind-{scene.seed}.pftrace"
        return (
            'To look, write the run for Perfetto: `python -c "import kvmviz as kv; '
            f"kv.to_perfetto({make}, '{trace}')\"`, open `{trace}` at "
            "https://ui.perfetto.dev, find the callback on a `notifiers` track at that time "
            "and count the arrows leaving its `waiting for mmu_lock (write)` slice; or print "
            "every request for `mmu_lock` from its request to its release: "
            f'`python -c "import kvmviz as kv; lock = {make}.lock; '
            f'print({lock_rows}.to_string())"`.'
        )

    def question(self, scene: Scene) -> str:
        run, window = scene.run, scene.window
        row = run.notifiers.iloc[scene.pick]
        release = float(row["t_release_us"])
        hit = "it hit guest memory" if row["hit"] else "it missed every memslot"
        if window is None:
            span = f"the whole run (0 to {run.scenario.duration_us / 1000:g} ms)"
        else:
            span = f"the window {window[0] / 1000:.4f} to {window[1] / 1000:.4f} ms of the run"
        return (
            f"The run: {scene.about}. Among the callbacks that waited for `mmu_lock` in {span}, "
            f"take the `{row['callback']}` of notifier event {int(row['event'])} ({hit}): it "
            f"asked for `mmu_lock` at t = {row['t_arrive_us'] / 1000:.4f} ms, waited "
            f"{row['wait_us']:.2f} µs for it and held it for {row['hold_us']:.3f} µs, until "
            f"t = {release / 1000:.4f} ms. How many fault attempts queued behind it? "
            f"{_BEHIND[self._policy(scene)]} (a number)\n\n{self._look(scene)}"
        )

    def explain(self, scene: Scene, answer: int) -> str:
        policy = self._policy(scene)
        return (
            f"{answer}: the fault attempts whose `blocked_by` is this callback, row {scene.pick} "
            f"of `run.notifiers`: `(run.faults.blocked_by == {scene.pick}).sum()`. "
            + (
                "Under the qrwlock a waiting writer holds back every new reader "
                "(queued_read_lock_slowpath): they queue behind it even while only readers hold "
                "the lock."
                if policy == "qrwlock"
                else _BEHIND[policy].split(". So")[0] + "."
            )
        )


_QUEUED_BEHIND = QueuedBehind()


def queued_behind(
    seed: int = 0,
    run=None,
    window: tuple[float, float] | None = None,
    about: str | None = None,
) -> Exercise:
    """How many fault attempts queued behind one waiting callback? Answer: an ``int``.

    Chapter 07's third exercise, the one Perfetto shows as arrows: a callback that took
    ``mmu_lock`` for write and had to wait for it, picked by the seed (in ``window`` if
    given). The answer is the number of fault attempts whose ``run.faults.blocked_by`` is that
    callback (the one home of who queued behind whom, :class:`~kvmviz.Run`): under the qrwlock
    the attempts that asked for the lock while it waited or held it, with no later callback
    ahead of them (a waiting writer holds back every new reader:
    ``queued_read_lock_slowpath``). A :func:`kvmviz.to_perfetto` ``.pftrace`` draws one flow
    from the callback's ``waiting for mmu_lock (write)`` slice to each of them.

    The question names everything needed to look outside a notebook: the VM and its
    scenario, the kernel, the lock, the seed, the window, and the commands that write the run
    for Perfetto or print the acquisitions of ``mmu_lock`` around the callback. Only callbacks
    that some fault queued behind are picked (any waiting callback if none was): seeds
    ``0 .. n - 1`` of one run pick its ``n`` such callbacks once each, in a fixed shuffled
    order.

    The exercise's :attr:`~Exercise.scene` holds what :class:`QueuedBehind` names.

    Parameters
    ----------
    seed : int
    run : Run, optional
        Default: :data:`QUEUE_SCENE` simulated on v5.12 with ``seed`` (one simulation).
    window : (float, float), optional
        Pick among the callbacks that arrive in ``[start_us, end_us)`` (the window a trace was
        exported with).
    about : str, optional
        How to get ``run``, said in the question (e.g. ``'chapter 07's replay on v5.12
        (runs["v5.12"])'``); default the run's kernel, lock, seed and scenario.

    Examples
    --------
    >>> q = queued_behind(seed=1)
    >>> q.check(q.answer)[0]
    True
    """
    return _QUEUED_BEHIND(seed, run=run, window=window, about=about)
