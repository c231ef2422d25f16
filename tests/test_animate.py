"""kvmviz.animate: the queue's frame states against the lock table, the blitting, the
animations, the exports.

Each test states one behaviour. The runs are small (12 vCPUs, 3 simulated ms) and the
animations short (a dozen frames), so the whole file takes a few seconds. The player lives in
:mod:`kvmviz.widgets` (tests/test_widgets.py); the standard animations in :mod:`kvmviz.gallery`
(tests/test_gallery.py).
"""

from __future__ import annotations

import io
import os
import re

import matplotlib as mpl
import numpy as np
import pandas as pd
import PIL.Image
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.path import Path as MplPath
from PIL import ImageSequence

import kvmviz as kv
from kvmviz import animate
from kvmviz._shared import _files
from kvmviz.engine import scripted_run
from kvmviz.views import animation_export, memslot_animation

SMALL = kv.Scenario(n_vcpus=12, duration_us=3_000, notifier_rate_hz=20_000, spurious_share=0.6)
N_FRAMES = 12


@pytest.fixture(scope="module")
def runs():
    return {k: kv.simulate(SMALL, k, seed=0) for k in ("v5.12", "v5.15")}


@pytest.fixture(scope="module")
def window(runs):
    """40 µs around v5.12's longest writer wait, exactly 40 µs wide."""
    return kv.metrics.busiest_window(runs["v5.12"], 40.0, whole=False)


@pytest.fixture(scope="module")
def queue(runs, window):
    return animate.queue_animation(runs, *window, n_frames=N_FRAMES)


@pytest.fixture(scope="module")
def memslots(runs):
    return animate.memslot_animation(runs["v5.15"], n_notifications=4, frames_per_notification=3)


def _scene(rows, policy="qrwlock"):
    """A hand-written scene as a Run: (is_writer, arrival, hold) per request, readers numbered
    as vCPUs 0, 1, ... and writers as events 0, 1, ... in order
    (:func:`kvmviz.engine.scripted_run`)."""
    is_writer, arrival, hold = (list(x) for x in zip(*rows, strict=True))
    return scripted_run(arrival, is_writer, hold, policy)


def _ids(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["holder"].astype(str), frame["who"], frame["t_request_us"], strict=True))


def _queued_behind(run, t: float) -> dict[int, int]:
    """Brute force over the callbacks, independent of ``blocked_by``: for each fault attempt
    waiting at ``t``, the callback it queued behind under the qrwlock (the newest that asked
    for ``mmu_lock`` at or before the attempt did and had not released it, the later row at a
    tie); counted per callback row."""
    n, f = run.notifiers, run.faults
    locked = n["locked"].to_numpy(dtype=bool)
    arrive = n["t_arrive_us"].to_numpy()
    release = n["t_release_us"].to_numpy()
    counts: dict[int, int] = {}
    waiting = f[(f["t_request_us"] <= t) & (t < f["t_grant_us"])]
    for request in waiting["t_request_us"]:
        ahead = [k for k in range(len(n)) if locked[k] and arrive[k] <= request < release[k]]
        if ahead:
            k = max(ahead, key=lambda k: (arrive[k], k))
            counts[k] = counts.get(k, 0) + 1
    return counts


class TestQueueFrames:
    def test_a_writer_waiting_for_a_reader_blocks_the_next_reader(self):
        """Reader 0 holds the lock from 0 to 10 µs; a writer arrives at 1 and waits for it; a
        reader arriving at 2 must wait too, behind the writer (qrwlock is fair)."""
        run = _scene([(False, 0.0, 10.0), (True, 1.0, 5.0), (False, 2.0, 1.0)])
        at_5, at_10, at_15 = animate.queue_frames(run, 5.0, 20.0, n_frames=3)
        assert [at_5.t_us, at_10.t_us, at_15.t_us] == [5.0, 10.0, 15.0]
        assert list(at_5.holders["who"]) == [0]
        assert list(at_5.waiters["holder"]) == ["notifier", "vcpu"]
        assert list(at_5.waiters["kind"]) == ["writer", "reader"]
        assert list(at_5.waiters["blocked_readers"]) == [1, 0]
        assert at_5.blocked_readers == 1
        assert at_5.caption == (
            "writer (invalidate_range_start) waits for 1 reader inside; "
            "1 new reader blocked behind it"
        )
        # At 10 µs the reader has left and the writer is inside, alone; the reader still waits,
        # for it (its blocked_by).
        assert list(at_10.holders["kind"]) == ["writer"]
        assert list(at_10.waiters["who"]) == [1]
        assert at_10.blocked_readers == 0 and at_10.readers_behind_holder == 1
        assert (
            at_10.caption
            == "writer (invalidate_range_start) holds mmu_lock alone; 1 reader waits for it"
        )
        # At 15 µs the writer has left and the reader is in.
        assert list(at_15.holders["who"]) == [1]
        assert at_15.waiters.empty
        assert at_15.caption == "1 reader holds mmu_lock for read; nobody waits"

    def test_under_reader_pref_a_waiting_writer_blocks_nobody(self):
        """The same scene under reader-pref: the late reader walks past the waiting writer, so
        no reader is blocked behind it, and the caption says so."""
        run = _scene([(False, 0.0, 10.0), (True, 1.0, 5.0), (False, 2.0, 1.0)], "reader-pref")
        (at_2_5,) = animate.queue_frames(run, 2.5, 3.0, n_frames=1)
        assert at_2_5.readers_inside == 2 and at_2_5.blocked_readers == 0
        assert at_2_5.caption.endswith("; 0 new readers blocked behind it")

    @pytest.mark.parametrize("kernel", ["v5.12", "v5.15"])
    def test_holders_and_waiters_are_the_lock_tables_rows(self, runs, window, kernel):
        """At frame time t: holders are the rows with grant <= t < release, waiters the rows
        with request <= t < grant, in FIFO (request time) order."""
        run = runs[kernel]
        lock = run.lock
        states = animate.queue_frames(run, *window, n_frames=40)
        assert len(states) == 40
        assert any(len(s.waiters) for s in states)
        for state in states:
            t = state.t_us
            inside = lock[(lock.t_grant_us <= t) & (t < lock.t_release_us)]
            waiting = lock[(lock.t_request_us <= t) & (t < lock.t_grant_us)]
            assert sorted(_ids(state.holders)) == sorted(_ids(inside))
            assert sorted(_ids(state.waiters)) == sorted(_ids(waiting))
            assert state.waiters["t_request_us"].is_monotonic_increasing
            assert list(state.waiters["position"]) == list(range(len(state.waiters)))
            assert set(state.holders["kind"]) <= {"reader", "writer"}
            expected_kind = np.where(state.waiters["mode"] == "write", "writer", "reader")
            assert list(state.waiters["kind"]) == list(expected_kind)

    def test_blocked_readers_are_those_a_brute_force_puts_behind_each_writer(self, busy8):
        """For each writer in a frame, waiting or holding: the waiting faults that a brute force
        over the callbacks puts behind it (the newest callback that asked before them and had
        not released it), and ``blocked_readers`` is the sum over the waiting writers."""
        run = busy8
        waits = run.lock[(run.lock["mode"] == "write") & (run.lock["wait_us"] > 0)]
        times = (waits["t_request_us"] + 0.9 * waits["wait_us"]).to_numpy()
        checked = blocked = 0
        for t in times[:40]:
            (state,) = animate.queue_frames(run, t, t + 1.0, n_frames=1)
            expected = _queued_behind(run, t)
            w = state.waiters
            writers = w[w["holder"] == "notifier"]
            for row, count in zip(writers["row"], writers["blocked_readers"], strict=True):
                assert count == expected.get(row, 0)
                checked += 1
            assert state.blocked_readers == int(writers["blocked_readers"].sum())
            inside = state.holders[state.holders["holder"] == "notifier"]["row"]
            assert state.readers_behind_holder == sum(expected.get(r, 0) for r in inside)
            assert re.match(r"(writer|\d+ writers) ", state.caption), state.caption
            blocked += state.blocked_readers
        assert checked >= 10 and blocked >= 10

    def test_callback_tallies_and_passers_by(self, runs, window):
        """The tallies count the callbacks granted the lock so far, those that asked and wait,
        and those that skipped it; those passing by skipped the lock."""
        for run in runs.values():
            n = run.notifiers
            for state in animate.queue_frames(run, *window, n_frames=20):
                arrived = n[n["t_arrive_us"] <= state.t_us]
                granted = arrived["locked"] & (arrived["t_grant_us"] <= state.t_us)
                assert state.callbacks_locked == int(granted.sum())
                assert state.callbacks_waiting == int((arrived["locked"] & ~granted).sum())
                assert state.callbacks_skipped == int((~arrived["locked"]).sum())
                assert not state.passing["locked"].any()

    def test_state_table_is_tidy(self):
        """``QueueState.table`` stacks holders ("inside") over waiters ("waiting"), one row
        each: at 5 µs, reader 0 inside, then the writer and reader 1 waiting."""
        run = _scene([(False, 0.0, 10.0), (True, 1.0, 5.0), (False, 2.0, 1.0)])
        (state,) = animate.queue_frames(run, 5.0, 6.0, n_frames=1)
        table = state.table
        assert list(table["place"]) == ["inside", "waiting", "waiting"]
        assert list(table["holder"]) == ["vcpu", "notifier", "vcpu"]
        assert list(table["who"]) == [0, 0, 1]
        assert list(table["kind"]) == ["reader", "writer", "reader"]
        assert list(table["blocked_by"]) == [-1, -1, 0]

    def test_bad_windows_are_refused(self, runs):
        """An empty or reversed window, or no frame at all, is a ValueError."""
        with pytest.raises(ValueError, match="greater than"):
            animate.queue_frames(runs["v5.12"], 10.0, 10.0)
        with pytest.raises(ValueError, match="n_frames"):
            animate.queue_frames(runs["v5.12"], 0.0, 10.0, n_frames=0)


CHAPTER_03_SCENE = [(False, 0, 6), (False, 1, 10), (True, 3, 2), (False, 4, 3), (False, 8, 6),
                    (False, 12, 3)]  # fmt: skip
_STATS = re.compile(
    r"notifier callbacks so far: (\d+) took mmu_lock, (\d+) waiting for it, (\d+) skipped it"
)


def _panel_texts(animation, i: int) -> list[dict[str, str]]:
    """Draw frame ``i`` and read back, per panel, its caption (the line under the lock, at
    (0, -0.55) in the panel's units) and its tally line, as drawn."""
    animation.draw(i)
    panels = []
    for ax in animation.figure.axes:
        texts = [t for t in ax.texts if t.get_visible()]
        (caption,) = [t.get_text() for t in texts if t.get_position() == (0, -0.55)]
        (stats,) = [t.get_text() for t in texts if _STATS.fullmatch(t.get_text())]
        panels.append({"stats": stats, "caption": caption})
    return panels


class TestCaptions:
    @pytest.mark.parametrize("which", ["chapter 03", "simulated"])
    def test_every_frame_says_waiting_or_holding_as_the_lock_is(self, runs, window, which):
        """Frame by frame, as drawn: a writer is said to hold mmu_lock exactly when one is
        inside, to wait when one waits and none is inside; the tally counts as "took" only the
        callbacks granted by then and as "waiting" those that asked and are not in yet (never
        "took mmu_lock" for a callback that still waits)."""
        if which == "chapter 03":
            panels = {p: _scene(CHAPTER_03_SCENE, p) for p in ("qrwlock", "reader-pref")}
            start, end, n_frames = 0.0, 20.0, 40
        else:
            panels, (start, end), n_frames = runs, window, 40
        animation = animate.queue_animation(panels, start, end, n_frames=n_frames)
        seen = set()
        for i in range(n_frames):
            t = start + i * (end - start) / n_frames
            for run, drawn in zip(panels.values(), _panel_texts(animation, i), strict=True):
                lock = run.lock
                writers = lock[lock["mode"] == "write"]
                inside = ((writers.t_grant_us <= t) & (t < writers.t_release_us)).any()
                waiting = ((writers.t_request_us <= t) & (t < writers.t_grant_us)).any()
                caption = drawn["caption"]
                assert ("holds mmu_lock alone" in caption) == inside, (t, caption)
                said_waiting = re.match(r"(writer \([a-z_]+\) waits|\d+ writers wait)", caption)
                assert bool(said_waiting) == (waiting and not inside), (t, caption)
                took, wait, skipped = map(int, _STATS.fullmatch(drawn["stats"]).groups())
                n = run.notifiers
                granted = n["locked"] & (n["t_grant_us"] <= t)
                asked = n["locked"] & (n["t_arrive_us"] <= t)
                assert took == int(granted.sum()), (t, drawn["stats"])
                assert wait == int((asked & ~granted).sum()), (t, drawn["stats"])
                assert skipped == int((~n["locked"] & (n["t_arrive_us"] <= t)).sum())
                seen.add((bool(inside), bool(waiting)))
        assert {(False, True), (True, False)} <= seen  # both states were checked


# -- the story: a spurious writer on v5.12, the same notification passing by on v5.15 ----------
STORY_SETUP = kv.presets.static_setup(n_vcpus=24, duration_us=4_000.0, guest_run_us=30.0)


@pytest.fixture(scope="module")
def story_runs():
    return {k: kv.simulate(STORY_SETUP, k, seed=0) for k in ("v5.12", "v5.15")}


def _story_oracle(runs, width_us, lead=0.25):
    """Brute force of the rule, row by row: the first run's spurious callbacks that took the
    lock and waited, skipped on every other run (matched by event, callback and rank in the
    event), less than (1 - 2 lead) width apart; the most fault attempts blocked_by it, then
    the earliest."""
    labels = list(runs)
    first = runs[labels[0]].notifiers
    blocked = runs[labels[0]].faults["blocked_by"].to_numpy()
    best = None
    for r in range(len(first)):
        row = first.iloc[r]
        if not (row["locked"] and not row["hit"] and row["wait_us"] > 0):
            continue
        rank = int(((first["event"] == row["event"]) & (first["callback"] == row["callback"]))
                   .to_numpy()[:r].sum())  # fmt: skip
        arrivals, skipped = [row["t_arrive_us"]], True
        for label in labels[1:]:
            n = runs[label].notifiers
            same = n[(n["event"] == row["event"]) & (n["callback"] == row["callback"])]
            twin = same.iloc[rank]
            skipped &= not twin["locked"]
            arrivals.append(twin["t_arrive_us"])
        if not skipped or max(arrivals) - min(arrivals) >= (1 - 2 * lead) * width_us:
            continue
        key = (-int((blocked == r).sum()), min(arrivals))
        if best is None or key < best[0]:
            best = (key, row["event"], row["callback"])
    (count, earliest), event, callback = best
    start = max(0.0, earliest - lead * width_us)
    return event, callback, -count, (start, start + width_us)


class TestStory:
    @pytest.mark.parametrize("width_us", [20.0, 60.0, 200.0])
    def test_the_rule_picks_what_a_brute_force_picks(self, story_runs, width_us):
        """story_window picks the callback and window of the rule worked out row by row."""
        story = animate.story_window(story_runs, width_us)
        event, callback, blocked, window = _story_oracle(story_runs, width_us)
        assert (story.event, story.callback, story.blocked) == (event, callback, blocked)
        assert story.window == pytest.approx(window)
        assert story.end_us - story.start_us == pytest.approx(width_us)

    def test_static_setup_seed_0(self, story_runs):
        """On the 24-vCPU static setup, seed 0: event 6's invalidate_range_start, a spurious
        callback that waits 13.9 µs on v5.12 with 11 faults queued behind it, and skips the
        lock on v5.15."""
        story = animate.story_window(story_runs)
        assert (story.event, story.callback, story.blocked) == (6, "invalidate_range_start", 11)
        assert story.wait_us == pytest.approx(13.89, abs=0.01)
        v512, v515 = (story_runs[k].notifiers.iloc[story.rows[k]] for k in ("v5.12", "v5.15"))
        assert v512["locked"] and not v512["hit"] and not v515["locked"]
        assert (v512["event"], v512["callback"]) == (v515["event"], v515["callback"])

    def test_the_frames_tell_the_story(self, story_runs):
        """In the chosen window, v5.12's frames show readers blocked behind the chosen
        spurious writer, and v5.15's show the same callback passing by without the lock (the
        skip mark, named) while no reader is ever blocked; the animation draws both."""
        story = animate.story_window(story_runs)
        frames = {k: animate.queue_frames(r, *story.window) for k, r in story_runs.items()}
        behind_it = [
            int(s.waiters.loc[(s.waiters["holder"] == "notifier")
                              & (s.waiters["row"] == story.rows["v5.12"]), "blocked_readers"].sum())
            for s in frames["v5.12"]
        ]  # fmt: skip
        assert max(behind_it) >= 1
        passing = [story.rows["v5.15"] in set(s.passing.index) for s in frames["v5.15"]]
        assert any(passing)
        assert all(s.blocked_readers == 0 for s in frames["v5.15"])
        animation = animate.queue_animation(story_runs)  # the story's window by default
        i = passing.index(True)
        animation.draw(i)
        texts = [t.get_text() for t in animation.figure.axes[1].texts]
        assert any(t.startswith("inv. start, event 6") and "without the lock" in t for t in texts)
        clock = animation.figure.axes[0].get_title(loc="right")
        assert clock == f"t = {story.start_us + i * 60.0 / 120:,.1f} µs"  # 120 frames, 60 µs

    def test_refusals_name_what_is_missing(self, story_runs):
        """One run, runs of two streams, or a first run that never locks for a miss: each a
        ValueError saying what was expected."""
        with pytest.raises(ValueError, match="two runs or more"):
            animate.story_window({"v5.12": story_runs["v5.12"]})
        other = kv.simulate(STORY_SETUP, "v5.15", seed=1)
        with pytest.raises(ValueError, match="different notification streams"):
            animate.story_window({"v5.12": story_runs["v5.12"], "v5.15": other})
        with pytest.raises(ValueError, match="no spurious callback waited"):
            animate.story_window({"v5.15": story_runs["v5.15"], "v5.12": story_runs["v5.12"]})


class TestDefaultWindow:
    def test_two_runs_open_on_the_story(self, runs):
        """Without a window, queue_animation of two runs shows the story's window
        (:func:`story_window`): its first frame's clock is the window's start."""
        story = animate.story_window(runs, 40.0)
        animation = animate.queue_animation(runs, n_frames=4, width_us=40.0)
        animation.draw(0)
        assert animation.figure.axes[0].get_title(loc="right") == f"t = {story.start_us:,.1f} µs"

    def test_one_run_opens_on_its_longest_writer_wait(self, runs):
        """With one run, the window is ``width_us`` from a quarter of it before its
        longest-waiting notifier callback (:func:`kvmviz.metrics.busiest_window`, fixed width):
        here that callback arrives at 1,620.4 µs and waits 9.0 µs, so 40 µs from 1,610.4 µs,
        in 4 frames of 10 µs."""
        animation = animate.queue_animation(runs["v5.12"], n_frames=4, width_us=40.0)
        clocks = []
        for i in range(4):
            animation.draw(i)
            clocks.append(animation.figure.axes[0].get_title(loc="right"))
        assert clocks == [
            "t = 1,610.4 µs",
            "t = 1,620.4 µs",
            "t = 1,630.4 µs",
            "t = 1,640.4 µs",
        ]


class TestAnimations:
    def test_frame_counts(self, queue, memslots):
        """A queue animation has the frames asked for; a memslot one, frames per event times
        events (4 events of 3 frames)."""
        assert len(queue) == N_FRAMES
        assert len(memslots) == 4 * 3

    def test_frames_differ(self, queue, memslots):
        """Every frame is a different picture (the clock ticks, ranges fall, the bar grows)."""
        for animation in (queue, memslots):
            frames = [animation.png(i) for i in range(len(animation))]
            assert len(set(frames)) == len(frames)
            assert all(f.startswith(b"\x89PNG") for f in frames)

    @pytest.mark.parametrize("kind", ["queue", "memslots"])
    def test_a_frame_does_not_depend_on_the_frames_drawn_before(self, runs, window, kind):
        """Blitting and the kept pixels of labels give the same picture as drawing afresh:
        frames drawn in order, in reverse, or alone in a new animation are identical."""

        def make():
            if kind == "queue":
                return animate.queue_animation(runs, *window, n_frames=N_FRAMES)
            return animate.memslot_animation(
                runs["v5.12"], n_notifications=6, frames_per_notification=2
            )

        forward, backward, alone = make(), make(), make()
        n = len(forward)
        in_order = [forward.png(i) for i in range(n)]
        assert [backward.png(i) for i in reversed(range(n))][::-1] == in_order
        assert alone.png(7) == in_order[7]

    def test_a_frame_renders_the_same_whatever_the_callers_settings(self, queue):
        """Frames are drawn with the settings of their making, not the caller's current ones."""
        before = queue.png(3)
        with mpl.rc_context({"font.size": 20, "hatch.linewidth": 4.0, "lines.linewidth": 9}):
            assert queue.png(3) == before

    def test_building_leaves_the_callers_settings_alone(self, runs, window):
        """Building and drawing an animation under the kvmviz theme leaves rcParams as the
        caller set them."""
        with mpl.rc_context({"font.size": 17}):
            animate.queue_animation(runs, *window, n_frames=2).png(1)
            assert mpl.rcParams["font.size"] == 17

    def test_out_of_range_frame(self, queue):
        """Frame ``n_frames`` (one past the last) and -1 are IndexErrors, not wrap-arounds."""
        with pytest.raises(IndexError, match=f"frame {N_FRAMES} out of range 0..{N_FRAMES - 1}"):
            queue.png(N_FRAMES)
        with pytest.raises(IndexError):
            queue.draw(-1)

    def test_draw_queue_on_an_axes(self, runs, window):
        """draw_queue draws one state on a caller's axes: the caption, the two headings and
        the clock on the right."""
        import matplotlib.pyplot as plt

        state = animate.queue_frames(runs["v5.12"], *window, n_frames=N_FRAMES)[N_FRAMES // 2]
        ax = animate.draw_queue(state, ax=plt.figure().gca())
        texts = [t.get_text() for t in ax.texts]
        assert state.caption in texts
        assert "inside mmu_lock" in texts
        assert any(t.startswith("waiting (FIFO)") for t in texts)
        assert ax.get_title(loc="right") == f"t = {state.t_us:,.1f} µs"

    def test_memslot_frames_follow_the_locked_column(self, runs):
        """On v5.15 a miss never takes the lock: its landing frame says "not taken"."""
        run = runs["v5.15"]
        animation = animate.memslot_animation(run, n_notifications=8, frames_per_notification=3)
        notifications = memslot_animation._notifications(run, 0, 8)
        for k, notification in notifications.iterrows():
            animation.draw(3 * k + 2)  # landed
            texts = {t.get_text() for t in animation.figure.axes[1].texts}
            taken = any(t.startswith("taken for write") for t in texts)
            assert taken == bool(notification["n_locked"])
            assert ("not taken" in texts) == (not notification["n_locked"])

    def test_memslot_animation_takes_its_older_keyword_names(self, runs):
        """n_events, frames_per_event and first_event are the older names of n_notifications,
        frames_per_notification and first_notification: the same frames; both at once is
        refused."""
        run = runs["v5.15"]
        new = animate.memslot_animation(
            run, n_notifications=2, frames_per_notification=2, first_notification=1
        )
        old = animate.memslot_animation(run, n_events=2, frames_per_event=2, first_event=1)
        assert len(old) == len(new) == 4
        assert old.png(3) == new.png(3)
        with pytest.raises(TypeError, match="n_notifications"):
            animate.memslot_animation(run, n_events=2, n_notifications=2)

    def test_in_a_notebook_it_shows_its_first_frame(self, queue):
        """An animation as a cell's last line shows frame 0 as a PNG (the live player is
        :func:`kvmviz.widgets.player`)."""
        assert queue._repr_png_() == queue.png(0)
        assert not hasattr(animate.Animation, "_ipython_display_")

    def test_draws_are_serialised_across_threads(self, queue):
        """Two threads drawing frames of one animation get the same pixels as one thread
        drawing them in turn: every draw holds the animation's lock."""
        from concurrent.futures import ThreadPoolExecutor

        expected = [queue.png(i) for i in range(N_FRAMES)]
        order = [i % N_FRAMES for i in range(4 * N_FRAMES)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            got = list(pool.map(queue.png, order))
        assert got == [expected[i] for i in order]


class TestBlitting:
    def test_set_spans_makes_one_compound_path_of_closed_rectangles(self):
        """Two spans become one path of two closed rectangles, from y0 up by height; no span
        leaves the collection empty."""
        ax = Figure().subplots()
        collection = ax.broken_barh([(0, 1)], (0, 1))
        animate.set_spans(collection, [(1.0, 2.0), (5.0, 0.5)], 3.0, 0.7)
        (path,) = collection.get_paths()
        assert path.vertices.tolist() == [
            [1.0, 3.0], [1.0, 3.7], [3.0, 3.7], [3.0, 3.0], [1.0, 3.0],
            [5.0, 3.0], [5.0, 3.7], [5.5, 3.7], [5.5, 3.0], [5.0, 3.0],
        ]  # fmt: skip
        closes = MplPath.CLOSEPOLY, MplPath.MOVETO
        assert [c for c in path.codes if c in closes] == [1, 79, 1, 79]
        animate.set_spans(collection, [], 3.0, 0.7)
        assert collection.get_paths() == []

    def test_a_blit_gives_the_pixels_of_a_full_draw(self):
        """After moving a line, the blit (background + the line) is pixel for pixel what a
        full draw of the same figure gives; and the background holds no trace of the line."""

        def figure():
            fig = Figure(figsize=(2, 1.5), dpi=50)
            ax = fig.subplots()
            ax.set(xlim=(0, 3), ylim=(0, 3))
            ax.plot([0, 1, 2], [1, 2, 1], color="black")
            (line,) = ax.plot([0, 3], [0, 0], color="red", linewidth=3, zorder=10)
            return fig, line

        fig, line = figure()
        blitter = animate.Blitter(fig, moving=[line])
        line.set_visible(False)
        blitter.prepare()
        empty = np.asarray(blitter.image())
        line.set_visible(True)
        line.set_ydata([2.5, 0.5])
        blitter.blit()
        blitted = np.asarray(blitter.image())
        reference, line_b = figure()
        line_b.set_ydata([2.5, 0.5])
        canvas = FigureCanvasAgg(reference)
        canvas.draw()
        full = np.asarray(
            PIL.Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert(
                "RGB"
            )
        )
        assert blitted.shape == (75, 100, 3)
        assert (blitted == full).all()
        red = (blitted[..., 0] > 200) & (blitted[..., 1] < 80)
        assert red.sum() > 50 and not ((empty[..., 0] > 200) & (empty[..., 1] < 80)).any()
        assert blitter.prepared and fig.get_layout_engine() is None

    def test_a_sprites_look_is_drawn_once_then_restored(self, monkeypatch):
        """A sprite (a text that only covers the background) is drawn the first time each look
        appears; coming back to a look restores its pixels instead of drawing it again."""
        fig = Figure(figsize=(2, 1), dpi=50)
        label = fig.text(0.5, 0.5, "a")
        blitter = animate.Blitter(fig, sprites=[[label]])
        blitter.prepare()
        drawn = []
        draw = label.draw
        monkeypatch.setattr(label, "draw", lambda r: drawn.append(label.get_text()) or draw(r))
        for text in ["a", "b", "a", "b", "c"]:
            label.set_text(text)
            blitter.blit()
        assert drawn == ["a", "b", "c"]


class TestExport:
    def test_html_is_one_self_contained_file(self, queue, tmp_path):
        """One HTML document: every frame a data: URL (12 here), the inline player, no
        external script, style sheet, font or link of any kind."""
        path = animate.to_html(queue, tmp_path / "queue.html")
        text = path.read_text(encoding="utf-8")
        assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
        assert re.findall(r"(?:https?:)?//[\w.-]+\.\w", text) == []  # no URL at all
        assert "<script src" not in text and "<link" not in text and "@import" not in text
        assert text.count("data:image/png;base64,") == N_FRAMES
        assert re.findall(r'src="([^"]*)"', text) == []  # frames are set from the script
        assert 'id="play"' in text and 'type="range"' in text
        assert f'max="{N_FRAMES - 1}"' in text
        assert "setInterval" in text and "}, 50);" in text  # 20 frames a second

    def test_html_frames_are_the_animations_frames_in_256_colours(self, memslots, tmp_path):
        """Each embedded frame decodes to a palette PNG of the animation's size, the same
        pixels as the frame quantised (no dithering), in frame order."""
        import base64

        text = animate.to_html(memslots, tmp_path / "m.html").read_text(encoding="utf-8")
        frames = re.findall(r'"data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
        assert len(frames) == len(memslots) == 12
        expected = list(animation_export._indexed_frames(memslots))
        for encoded, want in zip(frames, expected, strict=True):
            with PIL.Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
                assert image.mode == "P"
                assert image.size == memslots.canvas.get_width_height() == (880, 352)
                assert np.array_equal(
                    np.asarray(image.convert("RGB")), np.asarray(want.convert("RGB"))
                )

    def test_gif_has_every_frame(self, queue, tmp_path):
        """One GIF frame per animation frame, 200 ms each at 5 fps, looping forever."""
        path = animate.to_gif(queue, tmp_path / "queue.gif", fps=5)
        with PIL.Image.open(path) as gif:
            frames = list(ImageSequence.Iterator(gif))
            assert len(frames) == N_FRAMES
            assert gif.info["duration"] == 200
            assert gif.info["loop"] == 0
            assert gif.size == queue.canvas.get_width_height()

    def test_gif_refuses_a_rate_that_is_not_positive(self, memslots, tmp_path):
        """fps 0 is a ValueError, and nothing is written."""
        with pytest.raises(ValueError, match="fps must be positive, got 0"):
            animate.to_gif(memslots, tmp_path / "x.gif", fps=0)
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize("export", [animate.to_html, animate.to_gif])
    def test_refuses_to_overwrite(self, memslots, tmp_path, export):
        """An existing file is kept unless force=True; the file written has the umask's mode
        (not mkstemp's 0600) and no temporary file stays behind."""
        path = tmp_path / "kept.out"
        path.write_bytes(b"precious")
        with pytest.raises(FileExistsError, match=r"kept\.out"):
            export(memslots, path)
        assert path.read_bytes() == b"precious"
        export(memslots, path, force=True)
        assert path.read_bytes() != b"precious"
        assert os.listdir(tmp_path) == ["kept.out"]  # no temporary file left behind
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    @pytest.mark.parametrize("export", [animate.to_html, animate.to_gif])
    def test_refuses_before_rendering_a_frame(self, runs, tmp_path, export, monkeypatch):
        """The existing target is refused before the first frame is drawn (a long export
        fails at once, not at the end)."""
        animation = animate.memslot_animation(
            runs["v5.15"], n_notifications=2, frames_per_notification=1
        )
        drawn = []
        monkeypatch.setattr(animation, "draw", drawn.append)
        (tmp_path / "a.out").write_bytes(b"")
        with pytest.raises(FileExistsError):
            export(animation, tmp_path / "a.out")
        assert drawn == []

    def test_write_is_atomic(self, memslots, tmp_path, monkeypatch):
        """If the final rename fails, the old file is intact and no temporary file remains."""
        path = tmp_path / "anim.gif"
        path.write_bytes(b"old")

        def fail(src, dst):
            raise OSError("disk full")

        monkeypatch.setattr(_files.os, "replace", fail)
        with pytest.raises(OSError, match="disk full"):
            animate.to_gif(memslots, path, force=True)
        assert path.read_bytes() == b"old"
        assert os.listdir(tmp_path) == ["anim.gif"]

    def test_same_seed_same_bytes(self, tmp_path):
        """Two animations made from the same scenario and seed export to identical files, GIF
        and HTML; another seed gives other bytes."""
        paths = {}
        for n, seed in enumerate([1, 1, 2]):
            run = kv.simulate(SMALL, "v5.13", seed=seed)
            animation = animate.memslot_animation(run, n_notifications=3, frames_per_notification=2)
            paths[n] = [
                animate.to_gif(animation, tmp_path / f"{n}.gif").read_bytes(),
                animate.to_html(animation, tmp_path / f"{n}.html").read_bytes(),
            ]
        assert paths[0] == paths[1]
        assert paths[0][0] != paths[2][0] and paths[0][1] != paths[2][1]


def test_png_frames_decode(queue):
    """A frame's PNG decodes to an RGB image of the canvas's size (880 x 448 px: 11 x 5.6 in
    at 80 dpi, two panels)."""
    with PIL.Image.open(io.BytesIO(queue.png(0))) as image:
        assert image.mode == "RGB"
        assert image.size == queue.canvas.get_width_height() == (880, 448)
