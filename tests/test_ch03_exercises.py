"""Chapter 03's additions: the ``reader_wait`` exercise, ``engine.replay_run``, policy styles.

The oracle is a brute-force, code-level model of ``kernel/locking/qrwlock.c``: a ``cnts`` word
(reader bias from bit 9, ``_QW_WAITING`` 0x100, ``_QW_LOCKED`` 0xff) and a FIFO ``wait_lock``,
each request a small state machine following ``queued_read_lock`` /
``queued_read_lock_slowpath`` / ``queued_write_lock`` / ``queued_write_lock_slowpath`` step by
step, on integer time with every spin resolved at once. It shares no code with
:mod:`kvmviz.rwlock`, which models the same lock as a queue of requests.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import cli, exercises
from kvmviz.engine import replay_run

_QW_LOCKED, _QW_WAITING, _QR_BIAS = 0xFF, 0x100, 0x200
_QW_WMASK = 0x1FF


def _qrwlock_oracle(arrival, is_writer, hold) -> list[int]:
    """Grant times from the qrwlock code paths, stepped one µs at a time."""
    n = len(arrival)
    order = sorted(range(n), key=lambda i: (arrival[i], i))
    cnts = 0
    wait_lock: list[int] = []  # FIFO of requests holding (head) or queued on wait_lock
    state = dict.fromkeys(range(n), "new")
    grant: list[int | None] = [None] * n
    release: dict[int, int] = {}
    t = 0
    while None in grant or release:
        # Releases first (queued_read_unlock / queued_write_unlock).
        for i in [i for i, r in release.items() if r == t]:
            cnts -= _QW_LOCKED if is_writer[i] else _QR_BIAS
            del release[i]
            state[i] = "done"
        cnts = _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t)
        # Arrivals, in order: the fast paths.
        for i in (i for i in order if arrival[i] == t):
            if is_writer[i]:
                if cnts == 0:  # queued_write_lock: cmpxchg 0 -> _QW_LOCKED
                    cnts = _QW_LOCKED
                    state[i] = "inside"
                else:
                    wait_lock.append(i)
                    state[i] = "queued"
            else:
                cnts += _QR_BIAS  # queued_read_lock: add the bias, look at the writer bits
                if cnts & _QW_WMASK == 0:
                    state[i] = "inside"
                else:
                    cnts -= _QR_BIAS  # slow path: back out, queue on wait_lock
                    wait_lock.append(i)
                    state[i] = "queued"
            if state[i] == "inside":
                grant[i] = t
                release[i] = t + hold[i]
            # Whoever is at the head of wait_lock spins; let every spin run to a fixpoint.
            cnts = _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t)
        cnts = _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t)
        t += 1
        assert t < 10_000
    return grant


def _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t) -> int:
    progress = True
    while progress and wait_lock:
        progress = False
        head = wait_lock[0]
        if state[head] == "queued":  # it now owns wait_lock
            if is_writer[head]:
                state[head] = "writer-head"
            else:
                cnts += _QR_BIAS  # queued_read_lock_slowpath: re-add the bias, then spin
                state[head] = "reader-spin"
        if state[head] == "reader-spin":
            # Spin while _QW_LOCKED is set.
            if cnts & 0xFF == 0:
                state[head] = "inside"
                grant[head], release[head] = t, t + hold[head]
                wait_lock.pop(0)  # release wait_lock: the next in line becomes head
                progress = True
        elif state[head] == "writer-head":
            # queued_write_lock_slowpath: got wait_lock; lock if free, else set _QW_WAITING.
            if cnts == 0:
                cnts = _QW_LOCKED
            else:
                cnts |= _QW_WAITING
                state[head] = "writer-waiting"
                continue
            state[head] = "inside"
            grant[head], release[head] = t, t + hold[head]
            wait_lock.pop(0)
            progress = True
        elif state[head] == "writer-waiting":
            if cnts == _QW_WAITING:  # every reader has left
                cnts = _QW_LOCKED
                state[head] = "inside"
                grant[head], release[head] = t, t + hold[head]
                wait_lock.pop(0)
                progress = True
    return cnts


def _reader_pref_oracle(arrival, is_writer, hold) -> list[int]:
    """Readers enter unless a writer holds; a writer enters when nobody is inside."""
    n = len(arrival)
    grant: list[int | None] = [None] * n
    waiting_readers: list[int] = []
    waiting_writers: list[int] = []
    t = 0
    while None in grant:
        inside = [i for i in range(n) if grant[i] is not None and grant[i] + hold[i] > t]
        writer_in = any(is_writer[i] for i in inside)
        if not writer_in:
            for i in waiting_readers:
                grant[i] = t
            inside += waiting_readers
            waiting_readers = []
            if not inside and waiting_writers:
                w = waiting_writers.pop(0)
                grant[w] = t
                inside, writer_in = [w], True
        for i in sorted((i for i in range(n) if arrival[i] == t), key=lambda i: i):
            if not is_writer[i]:
                if writer_in:
                    waiting_readers.append(i)
                else:
                    grant[i] = t
                    inside.append(i)
            elif not inside and not waiting_writers:
                grant[i], writer_in = t, True
                inside.append(i)
            else:
                waiting_writers.append(i)
        t += 1
    return grant


def _spinlock_oracle(arrival, is_writer, hold) -> list[int]:
    """One holder at a time, first come first served."""
    free_at, grant = 0, [0] * len(arrival)
    for i in sorted(range(len(arrival)), key=lambda i: (arrival[i], i)):
        grant[i] = max(free_at, arrival[i])
        free_at = grant[i] + hold[i]
    return grant


def _oracle(arrival, is_writer, hold, policy) -> list[int]:
    return {
        "qrwlock": _qrwlock_oracle,
        "reader-pref": _reader_pref_oracle,
        "spinlock": _spinlock_oracle,
    }[policy](list(arrival), list(is_writer), list(hold))


requests = st.integers(1, 9).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 15), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.integers(1, 8), min_size=n, max_size=n),
    )
)


@given(requests, st.sampled_from(kv.POLICIES))
def test_replay_matches_the_code_level_oracle(scene, policy):
    """rwlock.replay grants every request when the kernel's code paths would (integer times,
    holds of at least 1 µs, ties resolved in request order)."""
    arrival, is_writer, hold = scene
    expected = _oracle(arrival, is_writer, hold, policy)
    assert kv.replay(arrival, is_writer, hold, policy).tolist() == expected


def test_oracle_on_the_chapter_scene():
    """The chapter's scene by hand: the writer waits for vCPU 1, the late readers for both."""
    arrival, is_writer, hold = [0, 1, 3, 4, 8, 12], [0, 0, 1, 0, 0, 0], [6, 10, 2, 3, 6, 3]
    assert _oracle(arrival, is_writer, hold, "qrwlock") == [0, 1, 11, 13, 13, 13]
    assert _oracle(arrival, is_writer, hold, "reader-pref") == [0, 1, 15, 4, 8, 12]
    assert _oracle(arrival, is_writer, hold, "spinlock") == [0, 6, 16, 18, 21, 27]


def _scene_of(q):
    """The request list printed in a reader_wait question."""
    arrival, is_writer, hold = [], [], []
    for line in q.question.splitlines():
        if line.startswith("- request"):
            words = line.replace("t=", "").split()
            arrival.append(int(words[words.index("at") + 1]))
            is_writer.append("writer" in line)
            hold.append(int(words[words.index("holds") + 1]))
    return arrival, is_writer, hold


@given(st.integers(0, 10_000), st.sampled_from(kv.POLICIES))
def test_reader_wait_answer_is_what_the_oracle_says(seed, policy):
    q = exercises.reader_wait(seed=seed, policy=policy)
    arrival, is_writer, hold = _scene_of(q)
    asked = int(q.question.split("request ")[1].split()[0])
    assert not is_writer[asked]
    assert sum(is_writer) == 1
    writer = is_writer.index(True)
    assert asked > writer  # a reader arriving after the writer
    # The writer arrives while every earlier reader is inside.
    assert all(arrival[i] + hold[i] > arrival[writer] for i in range(writer))
    grant = _oracle(arrival, is_writer, hold, policy)
    assert q.answer == grant[asked] - arrival[asked]
    assert q.check(q.answer)[0]


@given(st.integers(0, 10_000))
def test_reader_wait_under_reader_pref(seed):
    """A reader-preferring lock makes a reader wait only if it arrives while the writer is
    inside, and then just until the writer leaves: never for a writer that merely waits."""
    q = exercises.reader_wait(seed=seed, policy="reader-pref")
    arrival, is_writer, hold = _scene_of(q)
    asked = int(q.question.split("request ")[1].split()[0])
    w = is_writer.index(True)
    grant_w = kv.replay(arrival, is_writer, hold, "reader-pref")[w]
    inside = grant_w <= arrival[asked] < grant_w + hold[w]
    assert q.answer == (grant_w + hold[w] - arrival[asked] if inside else 0)


def test_reader_wait_is_seeded():
    a, b = exercises.reader_wait(seed=7), exercises.reader_wait(seed=7)
    assert (a.question, a.answer) == (b.question, b.answer)
    assert exercises.reader_wait(seed=8).question != a.question


def test_reader_wait_widget_parses_numbers():
    from kvmviz.exercises import _parse

    q = exercises.reader_wait(seed=3)
    assert q.check(_parse(f" {q.answer} ", q.answer))[0]
    assert not q.check(_parse(str(q.answer + 1), q.answer))[0]
    with pytest.raises(ValueError, match="number"):
        _parse("ten", q.answer)


def test_reader_wait_in_the_cli(capsys):
    assert "reader-wait" in cli._QUIZ
    assert cli.main(["quiz", "reader-wait", "-s", "3"]) == 0
    out = capsys.readouterr().out
    assert "Answer: ?" in out
    assert cli.main(["quiz", "reader-wait", "-s", "3", "-c"]) == 0
    answer = exercises.reader_wait(seed=3).answer
    assert f"Answer: {answer}." in capsys.readouterr().out


@given(requests, st.sampled_from(kv.POLICIES))
def test_replay_run_carries_the_replay(scene, policy):
    """Every request of the list is in the run's lock table, granted when replay says."""
    arrival, is_writer, hold = scene
    run = replay_run(arrival, is_writer, hold, policy)
    grant = kv.replay(arrival, is_writer, hold, policy)
    readers = [i for i, w in enumerate(is_writer) if not w]
    writers = [i for i, w in enumerate(is_writer) if w]
    assert run.faults["t_grant_us"].tolist() == grant[readers].tolist()
    assert run.notifiers["t_grant_us"].tolist() == grant[writers].tolist()
    assert len(run.lock) == len(arrival)
    assert (run.lock["wait_us"] >= 0).all()
    assert run.scenario.n_vcpus == max(len(readers), 1)
    assert run.summary()["lock_taken"] == len(writers)


def test_replay_run_draws_in_the_views():
    import matplotlib.pyplot as plt

    run = replay_run([0, 1, 3, 4], [False, False, True, False], [6, 10, 2, 3])
    ax = kv.plot.lock_timeline(run, 0, 20)
    assert ax.get_title(loc="left").startswith("mmu_lock on v5.12, 3 vCPUs")
    plt.close("all")
    frames = kv.animate.queue_frames(run, 0, 20, n_frames=20)
    at_5 = frames[5]  # t = 5: two readers inside, the writer waits, vCPU 2 behind it
    assert at_5.readers_inside == 2 and at_5.head_writer is not None
    assert at_5.blocked_readers == 1


def test_replay_run_rejects_bad_labels():
    with pytest.raises(ValueError, match="kernel"):
        replay_run([0], [True], [1], kernel="v4.0")
    with pytest.raises(ValueError, match="callback"):
        replay_run([0], [True], [1], callback="nope")


def test_policy_styles_tell_the_policies_apart():
    import matplotlib.pyplot as plt

    runs = {p: replay_run([0, 1, 2], [False, True, False], [3, 1, 1], p) for p in kv.POLICIES}
    ax = kv.plot.stall_cdf(runs)
    styles = {(line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len(styles) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["qrwlock (fair)", "reader-pref (unfair)", "spinlock (exclusive)"]
    plt.close("all")
    assert np.isfinite(runs["qrwlock"].faults["wait_us"]).all()
