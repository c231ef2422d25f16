"""kvmviz.widgets: the player of an animation and the kernel toggle dashboard, driven from Python.

Each test states one behaviour. The browser side (the same widgets in JupyterLab and Voila,
driven in Chromium) is ui-tests/; here the widgets' values are set and read directly. The
runs are small (a dozen vCPUs, a few simulated ms), so the file takes a few seconds.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading

import ipywidgets as w
import numpy as np
import PIL.Image
import pytest

import kvmviz as kv
from kvmviz import animate, classify, metrics, widgets
from kvmviz.metrics import KERNEL_TABLE_COLUMNS

N_FRAMES = 12
QUEUE = kv.Scenario(n_vcpus=12, duration_us=3_000, notifier_rate_hz=20_000, spurious_share=0.6)
# A dashboard small enough to build in a second, with hits and misses on the map.
DASHBOARD = kv.Scenario(n_vcpus=32, duration_us=5_000.0, notifier_rate_hz=5_000, spurious_share=0.5)


@pytest.fixture(scope="module")
def queue():
    runs = {k: kv.simulate(QUEUE, k, seed=0) for k in ("v5.12", "v5.15")}
    return animate.queue_animation(runs, n_frames=N_FRAMES, width_us=40.0)


@pytest.fixture
def dashboard():
    return widgets.toggle_dashboard(DASHBOARD, seed=0, kernel="v5.12")


class TestPlayer:
    def test_slider_drives_the_image(self, queue):
        """The slider and Play button are linked; moving the slider shows that frame."""
        box = widgets.player(queue)
        controls, image = box.children
        play, slider = controls.children
        assert isinstance(play, w.Play) and isinstance(slider, w.IntSlider)
        assert (play.max, slider.max) == (N_FRAMES - 1, N_FRAMES - 1)
        assert play.interval == 50  # the animation's 20 frames a second
        assert "kvmviz-player" in box._dom_classes  # what ui-tests/test_lab.py looks for
        assert image.value == queue.png(0)
        slider.value = 5
        assert image.value == queue.png(5)

    def test_starts_no_thread(self, queue):
        """Outside an event loop (a script, this test) the player draws nothing ahead and
        starts no thread: a frame is drawn when it is shown, on the caller's thread."""
        before = set(threading.enumerate())
        widgets.player(queue)
        assert set(threading.enumerate()) == before

    def test_renders_ahead_on_the_event_loop_thread(self, queue, monkeypatch):
        """Under a running event loop (as in ipykernel), every frame is drawn ahead, one per
        loop turn, all on the loop's own thread, while the loop stays free for the slider."""
        drawn = []
        png = queue.png
        monkeypatch.setattr(
            queue, "png", lambda i: drawn.append((i, threading.get_ident())) or png(i)
        )

        async def main():
            box = widgets.player(queue)
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
        drawn = []
        png = queue.png
        monkeypatch.setattr(queue, "png", lambda i: drawn.append(i) or png(i))

        async def main():
            box = widgets.player(queue)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            box.close()
            for _ in range(3 * N_FRAMES):
                await asyncio.sleep(0)

        asyncio.run(main())
        assert 1 <= len(drawn) < N_FRAMES


class TestTable:
    def test_the_table_shows_every_column_of_the_kernel_table(self):
        """The dashboard's table of :func:`kvmviz.metrics.kernel_table`: one header per column
        of KERNEL_TABLE_COLUMNS, in order, the writers' mean and max wait beside the readers'
        stall, values as the table gives them, only the selected kernel's row highlighted.
        Under reader-pref the readers' p99 is 0.0 µs while a writer waits over 100 µs."""
        scenario = kv.Scenario(n_vcpus=64, duration_us=20_000.0)
        runs = {
            "v5.12": kv.simulate(scenario, "v5.12", "reader-pref", seed=0),
            "v5.15": kv.simulate(scenario, "v5.12", "qrwlock", seed=0),
        }
        frame = metrics.kernel_table(runs)
        table = widgets._table_html(frame, selected="v5.15")
        headers = re.findall(r'<th data-column="([a-z0-9_]+)">([^<]+)</th>', table)
        assert [c for c, _ in headers] == list(KERNEL_TABLE_COLUMNS)
        labels = dict(headers)
        assert labels["writer_wait_mean_us"] == "writers&#x27; mean wait (µs)"
        assert labels["writer_wait_max_us"] == "writers&#x27; max wait (µs)"
        row = re.search(r'<tr[^>]*data-kernel="v5.12">(.*?)</tr>', table)[1]
        cells = dict(re.findall(r'<td data-column="([a-z0-9_]+)">([^<]+)</td>', row))
        unfair = frame.loc["v5.12"]
        assert cells["p99_us"] == "0.0"
        assert cells["writer_wait_mean_us"] == f"{unfair['writer_wait_mean_us']:.1f}"
        assert cells["writer_wait_max_us"] == f"{unfair['writer_wait_max_us']:.1f}"
        assert float(cells["writer_wait_max_us"]) > 100.0
        assert cells["brownout_mean"] == f"{100 * unfair['brownout_mean']:.1f}"
        assert cells["lock_taken"] == str(int(unfair["lock_taken"]))
        assert re.findall(r'<tr style="[^"]+" data-kernel="([^"]+)">', table) == ["v5.15"]
        assert np.isfinite([float(v) for v in cells.values()]).all()
        # A mapping of kernel to its row gives the same table.
        assert widgets._table_html(dict(frame.iterrows()), selected="v5.15") == table


class TestDashboard:
    def test_the_headline_and_table_follow_the_kernel_toggle(self, dashboard):
        """Flipping the toggle re-renders the headline (its data attributes read by
        ui-tests/test_dashboard.py) from the per-kernel table, without simulating again."""
        table = metrics.kernel_table(dashboard.runs())
        for kernel in ("v5.15", "v5.13", "v5.12"):
            misses = widgets.cached_simulate.cache_info().misses
            dashboard.kernel.value = kernel
            assert widgets.cached_simulate.cache_info().misses == misses
            s = table.loc[kernel]
            assert f'data-kernel="{kernel}" data-mmu="tdp"' in dashboard.headline.value
            assert f'data-p99-us="{s["p99_us"]:.3f}"' in dashboard.headline.value
            assert f'data-brownout="{s["brownout_mean"]:.5f}"' in dashboard.headline.value
            assert f'<tr style="font-weight:bold;background:#e8f1f8" data-kernel="{kernel}">' in (
                dashboard.table.value
            )
        # v5.12 takes the lock on every callback: none skipped it.
        lock_taken = int(table.loc["v5.12", "lock_taken"])
        assert f"0 of {lock_taken} callbacks skipped the lock." in dashboard.headline.value

    def test_a_slider_moves_the_range_bars_of_the_map(self, dashboard):
        """A new scenario redraws the map's range bars as one path per row: one rectangle (5
        vertices) per notification event of the selected run, hits and misses apart."""
        dashboard.vcpus.value = 40
        events = classify.first_callbacks(dashboard.runs()["v5.12"].notifiers)
        hits = int(events["hit"].sum())
        assert (hits, len(events) - hits) == (9, 11)
        for hit, collection in dashboard._span_collections.items():
            (path,) = collection.get_paths()
            assert len(path.vertices) == 5 * (hits if hit else len(events) - hits)

    def test_the_image_is_the_figure_as_png(self, dashboard):
        """The image is the 11 x 6.2 in figure at 80 dpi (880 x 496 px), RGB, and returning
        to a scenario gives the same picture again."""
        first = dashboard.image.value
        with PIL.Image.open(io.BytesIO(first)) as image:
            assert (image.size, image.mode) == ((880, 496), "RGB")
        dashboard.vcpus.value = 40
        assert dashboard.image.value != first
        dashboard.vcpus.value = DASHBOARD.n_vcpus
        assert dashboard.image.value == first
