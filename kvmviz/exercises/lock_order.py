"""The order ``mmu_lock`` grants its requests in (chapter 03): at what times a lock grants a
scene of readers and writers (``grant-order``), how long one late reader waits behind a writer
(``reader-wait``), and :func:`lock_states`, the lock instant by instant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._shared._checks import check_int
from ..model.rwlock import replay
from .base import Exercise, Generator, Scene

__all__ = ["grant_order", "lock_states", "reader_wait"]

# What the lock-order questions (grant_order, reader_wait) state about time and ties: the rules
# rwlock.replay follows (its module docstring), so a right answer is never a matter of luck.
_TIE_RULES = (
    "Times are whole µs. A request granted at t holds `mmu_lock` until t + its hold, and "
    "releases it at that instant. **Ties**: at one instant every release happens before any "
    "arrival; requests arriving at the same instant arrive in request order (lowest number "
    "first); a request that a release lets in is granted at that same instant."
)
_POLICY_RULES = {
    "qrwlock": "the kernel's fair rwlock of `kernel/locking/qrwlock.c`, as in chapter 03",
    "reader-pref": "a reader-preferring rwlock: a reader enters unless a writer holds the "
    "lock; a writer enters only when nobody holds the lock and no writer queues ahead of it; "
    "writers queue in arrival order, and when a writer leaves, every waiting reader enters "
    "before the next writer",
    "spinlock": "a spinlock: one holder at a time, readers included, in arrival order",
}


def _policy(policy: str) -> dict:
    """The ``options`` of a lock-order exercise: the policy, unless it is the default qrwlock."""
    return {} if policy == "qrwlock" else {"policy": policy}


def _request_lines(arrival, is_writer, hold) -> str:
    return "\n".join(
        f"- request {i}: {'writer (notifier)' if w else 'reader (vCPU fault)'} arrives at "
        f"t={a} µs, holds {h} µs"
        for i, (a, w, h) in enumerate(zip(arrival, is_writer, hold, strict=True))
    )


def _check_policy(policy: str) -> None:
    if policy not in _POLICY_RULES:
        raise ValueError(f"policy = {policy!r}: expected one of {', '.join(_POLICY_RULES)}")


class GrantOrder(Generator):
    """``grant-order``: the scene is ``policy, n, arrival, is_writer, hold`` (the requests, in
    request order)."""

    kind, salt = "grant-order", "grant_order"

    def scene(self, seed: int, policy: str = "qrwlock", n: int = 6) -> Scene:
        _check_policy(policy)
        n = check_int(n, "n", minimum=2)
        rng = self.rng(seed)
        while True:  # a scene where some request waits under every policy: never "at arrival"
            arrival = np.sort(rng.integers(0, 12, n))
            is_writer = rng.random(n) < 0.35
            is_writer[rng.integers(1, n)] = True  # at least one writer, not always first
            hold = rng.integers(1, 6, n)
            if all(
                (replay(arrival, is_writer, hold, policy=p) > arrival).any() for p in _POLICY_RULES
            ):
                break
        return Scene(policy=policy, n=n, arrival=arrival, is_writer=is_writer, hold=hold)

    def answer(self, scene: Scene) -> list:
        grants = replay(scene.arrival, scene.is_writer, scene.hold, policy=scene.policy)
        return grants.astype(int).tolist()

    def question(self, scene: Scene) -> str:
        return (
            f"Under **{scene.policy}** ({_POLICY_RULES[scene.policy]}), at what time is each "
            f"request granted `mmu_lock`?\n\n"
            f"{_request_lines(scene.arrival, scene.is_writer, scene.hold)}\n\n{_TIE_RULES}\n\n"
            f"Answer with the {scene.n} grant times in request order, in µs, separated by "
            "spaces or commas, e.g. `0 3 3 7 ...`."
        )

    def explain(self, scene: Scene, answer: list) -> str:
        return {
            "qrwlock": "qrwlock: a reader enters at once only if no writer holds or waits; a "
            "waiting writer blocks every newer reader until the readers inside have left.",
            "reader-pref": "reader-pref: a reader enters unless a writer holds; writers wait "
            "until no reader is inside.",
            "spinlock": "spinlock: one holder at a time, first come first served.",
        }[scene.policy] + f" Grants: {answer}."

    def options(self, scene: Scene) -> dict:
        return _policy(scene.policy)


_GRANT_ORDER = GrantOrder()


class ReaderWait(Generator):
    """``reader-wait``: the scene is ``policy, arrival, is_writer, hold`` (the requests),
    ``writer`` (the writer's request number) and ``asked`` (the reader asked about)."""

    kind, salt = "reader-wait", "reader_wait"

    def scene(self, seed: int, policy: str = "qrwlock") -> Scene:
        _check_policy(policy)
        rng = self.rng(seed)
        while True:  # until the reader asked about arrives before the writer leaves, on every lock
            n_before, n_after = int(rng.integers(1, 3)), int(rng.integers(2, 4))
            before = np.sort(rng.integers(0, 3, n_before))
            # The writer arrives while every early reader is still inside.
            hold_before = rng.integers(6, 12, n_before)
            writer_at = int(before.max()) + int(rng.integers(1, 4))
            after = np.sort(writer_at + rng.integers(1, 10, n_after))
            arrival = np.concatenate([before, [writer_at], after]).astype(int)
            is_writer = np.zeros(len(arrival), dtype=bool)
            is_writer[n_before] = True
            hold = np.concatenate([hold_before, rng.integers(1, 4, 1), rng.integers(1, 7, n_after)])
            hold = hold.astype(int)
            asked = n_before + 1 + int(rng.integers(n_after))
            # A reader that arrives once the writer has left asks nothing about the writer: the
            # scene is drawn again (the same scene for every policy, so they can be compared).
            leaves = [replay(arrival, is_writer, hold, policy=p)[n_before] + hold[n_before]
                      for p in _POLICY_RULES]  # fmt: skip
            if arrival[asked] < min(leaves):
                break
        return Scene(
            policy=policy,
            arrival=arrival,
            is_writer=is_writer,
            hold=hold,
            writer=n_before,
            asked=asked,
        )

    def answer(self, scene: Scene) -> int:
        grants = replay(scene.arrival, scene.is_writer, scene.hold, policy=scene.policy)
        return round(float(grants[scene.asked] - scene.arrival[scene.asked]))

    def question(self, scene: Scene) -> str:
        return (
            f"Under **{scene.policy}** ({_POLICY_RULES[scene.policy]}), how long does request "
            f"{scene.asked} (a reader) wait for `mmu_lock`, from its arrival to its grant?\n\n"
            f"{_request_lines(scene.arrival, scene.is_writer, scene.hold)}\n\n{_TIE_RULES}\n\n"
            "Answer in µs, a whole number, e.g. `7` (`0` if it enters at once)."
        )

    def explain(self, scene: Scene, answer: int) -> str:
        rule_text = {
            "qrwlock": "qrwlock: the writer finds readers inside, sets _QW_WAITING and waits for "
            "them holding wait_lock (queued_write_lock_slowpath); a reader arriving meanwhile "
            "sees the writer bits and queues on wait_lock behind it (queued_read_lock_slowpath).",
            "reader-pref": "reader-pref: a reader enters unless a writer holds the lock.",
            "spinlock": "spinlock: one holder at a time, first come first served.",
        }[scene.policy]
        grants = replay(scene.arrival, scene.is_writer, scene.hold, policy=scene.policy)
        arrival, hold, w, asked = scene.arrival, scene.hold, scene.writer, scene.asked
        return (
            f"{rule_text} The writer (request {w}) arrives at t={arrival[w]}, is granted at "
            f"t={grants[w]:g} and leaves at t={grants[w] + hold[w]:g}; request {asked} arrives "
            f"at t={arrival[asked]} and is granted at t={grants[asked]:g}: it waits {answer} µs."
        )

    def options(self, scene: Scene) -> dict:
        return _policy(scene.policy)


_READER_WAIT = ReaderWait()


def grant_order(seed: int = 0, policy: str = "qrwlock", n: int = 6) -> Exercise:
    """At what times does ``policy`` grant these requests? Answer: the list of grant times.

    The question states the tie rules :func:`kvmviz.rwlock.replay` follows (a release before an
    arrival at one instant; arrival order, then request index), and for ``reader-pref`` and
    ``spinlock`` the policy's rules; the answer is :func:`~kvmviz.rwlock.replay`'s grants. A
    scene where no request waits under some policy (every grant at its arrival) is drawn
    again, so one seed is one scene for every policy.

    The exercise's :attr:`~Exercise.scene` holds what :class:`GrantOrder` names.

    Parameters
    ----------
    seed : int
    policy : {"qrwlock", "reader-pref", "spinlock"}
    n : int
        Number of requests.

    Examples
    --------
    >>> q = grant_order(seed=0)
    >>> q.answer, q.check("3, 8, 9, 9, 9, 12")[0]
    ([3, 8, 9, 9, 9, 12], True)
    """
    return _GRANT_ORDER(seed, policy=policy, n=n)


def reader_wait(seed: int = 0, policy: str = "qrwlock") -> Exercise:
    """How long does one reader wait for ``mmu_lock``? Answer: its wait, µs (an integer).

    The scene of chapter 03: one or two readers (vCPU page faults) inside, one writer (a
    notifier) arriving while they hold, then readers arriving after the writer. The question
    asks about one of the late readers, one that arrives before the writer leaves under every
    policy (a scene where it arrives later asks nothing about the writer, and is drawn again:
    one seed is one scene for every policy), and states the tie rules (a release before an
    arrival at one instant; arrival order, then request index); the answer is its grant time
    from :func:`kvmviz.rwlock.replay` minus its arrival.

    The exercise's :attr:`~Exercise.scene` holds what :class:`ReaderWait` names.

    Parameters
    ----------
    seed : int
    policy : {"qrwlock", "reader-pref", "spinlock"}

    Examples
    --------
    >>> q = reader_wait(seed=0)
    >>> q.check(q.answer)[0]
    True
    """
    return _READER_WAIT(seed, policy=policy)


def lock_states(run) -> pd.DataFrame:
    """The state of ``mmu_lock`` just after every arrival and every release of a run.

    Chapter 03's step-by-step table: at each instant a request arrives or a holder leaves,
    who arrives or leaves, who is inside, who waits (in FIFO order) and what the lock says
    (:func:`kvmviz.animate.queue_frames` at that instant); under ``qrwlock`` also the writer
    bits of ``cnts`` (``_QW_LOCKED`` while a writer is inside, ``_QW_WAITING`` while one waits
    at the head of the queue: ``kernel/locking/qrwlock.c``, docs/kernel.md §4.3).

    Parameters
    ----------
    run : Run
        Typically a scripted scene (:func:`kvmviz.engine.scripted_run`): every instant is a row.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``t_us``: ``what happens, inside, waiting (FIFO), the lock`` and, under
        ``qrwlock``, ``cnts writer bits``. vCPUs are named ``vCPU <n>``, notifiers
        ``notifier``; ``-`` stands for nobody.
    """
    from ..stats.lock_state import queue_frames

    lock = run.lock

    def named(rows) -> str:
        return ", ".join(
            "notifier" if h == "notifier" else f"vCPU {w}"
            for h, w in zip(rows["holder"], rows["who"], strict=True)
        )

    instants = sorted(set(lock["t_request_us"]) | set(lock["t_release_us"]))
    rows = []
    for t in instants:
        state = queue_frames(run, t, t + 1e-6, n_frames=1)[0]
        arrive = lock[lock["t_request_us"] == t]
        leave = lock[lock["t_release_us"] == t]
        happened = [f"{named(arrive)} arrives"] * (len(arrive) > 0)
        happened += [f"{named(leave)} leaves"] * (len(leave) > 0)
        row = {
            "t_us": t,
            "what happens": "; ".join(happened),
            "inside": named(state.holders) or "-",
            "waiting (FIFO)": named(state.waiters) or "-",
            "the lock": state.caption,
        }
        if run.policy == "qrwlock":
            row["cnts writer bits"] = (
                "_QW_LOCKED"
                if state.writer_inside
                else "_QW_WAITING"
                if state.head_writer is not None
                else "0"
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("t_us")
