"""kvmviz.animate: the queue's frame states against the lock table, the animations, the exports.

Each test states one behaviour. The runs are small (12 vCPUs, 3 simulated ms) and the
animations short (a dozen frames), so the whole file takes a few seconds.
"""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

import matplotlib as mpl
import numpy as np
import pandas as pd
import PIL.Image
import pytest
from PIL import ImageSequence

import kvmviz as kv
from kvmviz import _files, animate
from kvmviz.rwlock import replay

SMALL = kv.Scenario(n_vcpus=12, duration_us=3_000, notifier_rate_hz=20_000, spurious_share=0.6)
N_FRAMES = 12


@pytest.fixture(scope="module")
def runs():
    return {k: kv.simulate(SMALL, k, seed=0) for k in ("v5.12", "v5.15")}


@pytest.fixture(scope="module")
def window(runs):
    return animate.busiest_window(runs["v5.12"], 40.0)


@pytest.fixture(scope="module")
def queue(runs, window):
    return animate.queue_animation(runs, *window, n_frames=N_FRAMES)


@pytest.fixture(scope="module")
def memslots(runs):
    return animate.memslot_animation(runs["v5.15"], n_events=4, frames_per_event=3)


def _hand_made_run(rows, kernel="v5.12"):
    """A stand-in for a Run with a hand-written lock table: (who, is_writer, arrival, hold)
    per request, granted as :func:`kvmviz.rwlock.replay` grants them under qrwlock."""
    who, is_writer, arrival, hold = (list(x) for x in zip(*rows, strict=True))
    grant = replay(arrival, is_writer, hold)
    lock = pd.DataFrame(
        {
            "holder": ["notifier" if w else "vcpu" for w in is_writer],
            "who": who,
            "mode": ["write" if w else "read" for w in is_writer],
            "callback": ["clear_flush_young" if w else "page_fault" for w in is_writer],
            "t_request_us": np.asarray(arrival, dtype=float),
            "t_grant_us": grant,
            "t_release_us": grant + np.asarray(hold, dtype=float),
        }
    )
    lock["wait_us"] = lock["t_grant_us"] - lock["t_request_us"]
    lock["hold_us"] = lock["t_release_us"] - lock["t_grant_us"]
    writers = lock[lock["mode"] == "write"]
    notifiers = pd.DataFrame(
        {
            "event": writers["who"].to_numpy(),
            "callback": writers["callback"].to_numpy(),
            "locked": True,
            "t_arrive_us": writers["t_request_us"].to_numpy(),
        }
    )
    return SimpleNamespace(lock=lock.sort_values("t_grant_us"), notifiers=notifiers, kernel=kernel)


def _ids(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["holder"].astype(str), frame["who"], frame["t_request_us"], strict=True))


class TestQueueFrames:
    def test_a_writer_waiting_for_a_reader_blocks_the_next_reader(self):
        """Reader 0 holds the lock from 0 to 10 µs; a writer arrives at 1 and waits for it; a
        reader arriving at 2 must wait too, behind the writer (qrwlock is fair)."""
        run = _hand_made_run([(0, False, 0.0, 10.0), (7, True, 1.0, 5.0), (1, False, 2.0, 1.0)])
        at_5, at_10, at_15 = animate.queue_frames(run, 5.0, 20.0, n_frames=3)
        assert [at_5.t_us, at_10.t_us, at_15.t_us] == [5.0, 10.0, 15.0]
        assert list(at_5.holders["who"]) == [0]
        assert list(at_5.waiters["who"]) == [7, 1]
        assert list(at_5.waiters["kind"]) == ["writer", "reader"]
        assert at_5.blocked_readers == 1
        assert at_5.caption == "writer waits for 1 reader inside; 1 new reader blocked"
        # At 10 µs the reader has left and the writer is inside, alone; the reader still waits.
        assert list(at_10.holders["kind"]) == ["writer"]
        assert list(at_10.waiters["who"]) == [1]
        assert at_10.caption == "writer (clear_flush_young) holds mmu_lock alone; 1 other waits"
        # At 15 µs the writer has left and the reader is in.
        assert list(at_15.holders["who"]) == [1]
        assert at_15.waiters.empty
        assert at_15.caption == "1 reader holds mmu_lock for read; nobody waits"

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

    def test_blocked_readers_are_the_waiting_readers_that_came_after_the_writer(self, runs):
        """For each waiting writer: the waiting readers that requested after it."""
        run = runs["v5.12"]
        waits = run.lock[(run.lock["mode"] == "write") & (run.lock["wait_us"] > 0)]
        times = (waits["t_request_us"] + waits["wait_us"] / 2).to_numpy()
        checked = 0
        for t in times[:30]:
            (state,) = animate.queue_frames(run, t, t + 1.0, n_frames=1)
            w = state.waiters
            readers = w[w["kind"] == "reader"]
            for _, writer in w[w["kind"] == "writer"].iterrows():
                expected = int((readers["t_request_us"] > writer["t_request_us"]).sum())
                assert writer["blocked_readers"] == expected
                checked += 1
            head = w[w["kind"] == "writer"].iloc[0]
            assert state.blocked_readers == head["blocked_readers"]
            assert state.caption.startswith("writer")
        assert checked >= 10

    def test_callback_tallies_and_passers_by(self, runs, window):
        """The tallies count the callbacks arrived so far; those passing by skipped the lock."""
        run = runs["v5.15"]
        n = run.notifiers
        for state in animate.queue_frames(run, *window, n_frames=20):
            arrived = n[n["t_arrive_us"] <= state.t_us]
            assert state.callbacks_locked == int(arrived["locked"].sum())
            assert state.callbacks_skipped == int((~arrived["locked"]).sum())
            assert not state.passing["locked"].any()

    def test_state_table_is_tidy(self, runs, window):
        state = animate.queue_frames(runs["v5.12"], *window, n_frames=5)[2]
        table = state.table
        assert len(table) == len(state.holders) + len(state.waiters)
        assert set(table["place"]) <= {"inside", "waiting"}

    def test_bad_windows_are_refused(self, runs):
        with pytest.raises(ValueError, match="greater than"):
            animate.queue_frames(runs["v5.12"], 10.0, 10.0)
        with pytest.raises(ValueError, match="n_frames"):
            animate.queue_frames(runs["v5.12"], 0.0, 10.0, n_frames=0)


class TestBusiestWindow:
    def test_no_window_has_more_writer_waiting(self, runs):
        """The window found scores at least as much writer waiting time as any other start on
        a fine grid, and writers do wait in it."""
        run = runs["v5.12"]
        w = run.lock[(run.lock["mode"] == "write") & (run.lock["wait_us"] > 0)]
        a, b = w["t_request_us"].to_numpy(), w["t_grant_us"].to_numpy()

        def score(starts):
            starts = np.asarray(starts, dtype=float)[:, None]
            return np.clip(np.minimum(b, starts + 40.0) - np.maximum(a, starts), 0, None).sum(1)

        start, end = animate.busiest_window(run, 40.0)
        assert end - start == pytest.approx(40.0)
        (best,) = score([start])
        assert best > 0
        assert best >= score(np.arange(0.0, SMALL.duration_us, 0.25)).max() - 1e-9

    def test_the_waiting_is_centred(self):
        """One writer waits from 101 to 110 µs: a 20 µs window centres its wait."""
        run = _hand_made_run([(0, False, 100.0, 10.0), (7, True, 101.0, 5.0)])
        start, end = animate.busiest_window(run, 20.0)
        assert (start + end) / 2 == pytest.approx(105.5)

    def test_without_waits_the_first_window(self):
        run = _hand_made_run([(0, False, 3.0, 1.0), (7, True, 5.0, 1.0)])
        assert animate.busiest_window(run, 10.0) == (3.0, 13.0)


class TestAnimations:
    def test_frame_counts(self, queue, memslots):
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
            return animate.memslot_animation(runs["v5.12"], n_events=6, frames_per_event=2)

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
        with mpl.rc_context({"font.size": 17}):
            animate.queue_animation(runs, *window, n_frames=2).png(1)
            assert mpl.rcParams["font.size"] == 17

    def test_out_of_range_frame(self, queue):
        with pytest.raises(IndexError):
            queue.png(N_FRAMES)

    def test_draw_queue_on_an_axes(self, runs, window):
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
        animation = animate.memslot_animation(run, n_events=8, frames_per_event=3)
        events = animate._events(run, 0, 8)
        for k, event in events.iterrows():
            animation.draw(3 * k + 2)  # landed
            texts = {t.get_text() for t in animation.figure.axes[1].texts}
            taken = any(t.startswith("taken for write") for t in texts)
            assert taken == bool(event["n_locked"])
            assert ("not taken" in texts) == (not event["n_locked"])


class TestPlayer:
    def test_slider_drives_the_image(self, queue):
        """The slider and Play button are linked; moving the slider shows that frame."""
        import ipywidgets as w

        box = animate.player(queue)
        controls, image = box.children
        play, slider = controls.children
        assert isinstance(play, w.Play) and isinstance(slider, w.IntSlider)
        assert (play.max, slider.max) == (N_FRAMES - 1, N_FRAMES - 1)
        assert image.value == queue.png(0)
        slider.value = 5
        assert image.value == queue.png(5)

    def test_starts_no_thread(self, queue):
        """Outside an event loop (a script, this test) the player draws nothing ahead and
        starts no thread: a frame is drawn when it is shown, on the caller's thread."""
        import threading

        before = set(threading.enumerate())
        animate.player(queue)
        assert set(threading.enumerate()) == before

    def test_renders_ahead_on_the_event_loop_thread(self, queue, monkeypatch):
        """Under a running event loop (as in ipykernel), every frame is drawn ahead, one per
        loop turn, all on the loop's own thread, while the loop stays free for the slider."""
        import asyncio
        import threading

        drawn = []
        png = queue.png
        monkeypatch.setattr(
            queue, "png", lambda i: drawn.append((i, threading.get_ident())) or png(i)
        )

        async def main():
            box = animate.player(queue)
            turns = 0
            while len(drawn) < N_FRAMES and turns < 10 * N_FRAMES:
                await asyncio.sleep(0)  # one turn: at most one frame drawn meanwhile
                turns += 1
            return box, turns

        box, turns = asyncio.run(main())
        assert [i for i, _ in drawn] == list(range(N_FRAMES))
        assert {ident for _, ident in drawn} == {threading.get_ident()}
        assert turns >= N_FRAMES - 1  # not all at once: the loop served other work between
        slider = box.children[0].children[1]
        slider.value = 7
        assert len(drawn) == N_FRAMES  # already rendered: nothing drawn again

    def test_stops_when_closed(self, queue, monkeypatch):
        """Closing the player's widget stops the frames it was still drawing ahead."""
        import asyncio

        drawn = []
        png = queue.png
        monkeypatch.setattr(queue, "png", lambda i: drawn.append(i) or png(i))

        async def main():
            box = animate.player(queue)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            box.close()
            for _ in range(3 * N_FRAMES):
                await asyncio.sleep(0)

        asyncio.run(main())
        assert 1 <= len(drawn) < N_FRAMES

    def test_draws_are_serialised_across_threads(self, queue):
        """Two threads drawing frames of one animation get the same pixels as one thread
        drawing them in turn: every draw holds the animation's lock."""
        from concurrent.futures import ThreadPoolExecutor

        expected = [queue.png(i) for i in range(N_FRAMES)]
        order = [i % N_FRAMES for i in range(4 * N_FRAMES)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            got = list(pool.map(queue.png, order))
        assert got == [expected[i] for i in order]


class TestExport:
    def test_html_is_one_self_contained_file(self, queue, tmp_path):
        path = animate.to_html(queue, tmp_path / "queue.html")
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text
        assert "<script src" not in text and "<link" not in text
        assert text.count("data:image/png;base64,") == N_FRAMES
        assert 'id="play"' in text and 'type="range"' in text
        assert text.rstrip().endswith("</html>")

    def test_gif_has_every_frame(self, queue, tmp_path):
        path = animate.to_gif(queue, tmp_path / "queue.gif", fps=5)
        with PIL.Image.open(path) as gif:
            frames = list(ImageSequence.Iterator(gif))
            assert len(frames) == N_FRAMES
            assert gif.info["duration"] == 200
            assert gif.info["loop"] == 0

    @pytest.mark.parametrize("export", [animate.to_html, animate.to_gif])
    def test_refuses_to_overwrite(self, memslots, tmp_path, export):
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
        """Two animations made from the same scenario and seed export to identical files."""
        paths = []
        for n in range(2):
            run = kv.simulate(SMALL, "v5.13", seed=1)
            animation = animate.memslot_animation(run, n_events=3, frames_per_event=2)
            paths.append(animate.to_gif(animation, tmp_path / f"{n}.gif"))
            paths.append(animate.to_html(animation, tmp_path / f"{n}.html"))
        assert paths[0].read_bytes() == paths[2].read_bytes()
        assert paths[1].read_bytes() == paths[3].read_bytes()

    def test_render_all(self, tmp_path, monkeypatch, queue, memslots):
        """render_all writes each standard animation in each format, and refuses to overwrite
        before writing anything. (The standard animations are swapped for short ones.)"""
        short = {"queue-v5.12-vs-v5.15": queue, "memslot-arrivals-v5.13": memslots}
        monkeypatch.setattr(animate, "standard_animations", lambda seed=0, names=None: short)
        written = animate.render_all(tmp_path / "out", formats=("html", "gif"))
        assert [p.name for p in written] == [
            "queue-v5.12-vs-v5.15.html",
            "queue-v5.12-vs-v5.15.gif",
            "memslot-arrivals-v5.13.html",
            "memslot-arrivals-v5.13.gif",
        ]
        assert all(p.stat().st_size > 0 for p in written)
        with pytest.raises(FileExistsError):
            animate.render_all(tmp_path / "out", formats=("gif",))
        assert animate.render_all(tmp_path / "out", formats=("gif",), force=True)
        with pytest.raises(ValueError, match="formats"):
            animate.render_all(tmp_path / "x", formats=("svg",))

    def test_standard_animations(self):
        """The standard animations are built (not rendered here) with their full length."""
        standard = animate.standard_animations(seed=0)
        assert sorted(standard) == ["memslot-arrivals-v5.13", "queue-v5.12-vs-v5.15"]
        assert [len(a) for a in standard.values()] == [120, 120]


def test_png_frames_decode(queue):
    with PIL.Image.open(io.BytesIO(queue.png(0))) as image:
        assert image.size == queue.canvas.get_width_height()
