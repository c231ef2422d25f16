"""kvmviz.widgets: the player of an animation, the kernel toggle dashboard and the zoomable lock
timeline, driven from Python.

Each test states one behaviour. The browser side (the same widgets in JupyterLab and Voila,
driven in Chromium) is ui-tests/; here the widgets' values are set and read directly. The
runs are small (a dozen vCPUs, a few simulated ms), so the file takes a few seconds.
"""

from __future__ import annotations

import asyncio
import functools
import html
import io
import itertools
import re
import threading
import time

import ipywidgets as w
import matplotlib.text
import numpy as np
import PIL.Image
import pytest
import traitlets
from _artists import gids
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import kvmviz as kv
from kvmviz import animate, classify, metrics, widgets
from kvmviz.metrics import KERNEL_TABLE_COLUMNS
from kvmviz.views import metric_labels
from kvmviz.widgets import dashboard as dashboard_module
from kvmviz.widgets import explorer as explorer_module
from kvmviz.widgets.animation_player import PAUSE_S, run_ahead

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
        """Under a running event loop (as in ipykernel), every frame is drawn ahead, in order,
        one at a time, all on the loop's own thread, while the loop stays free for the
        slider."""
        drawn = []
        png = queue.png
        monkeypatch.setattr(
            queue, "png", lambda i: drawn.append((i, threading.get_ident())) or png(i)
        )

        async def main():
            box = widgets.player(queue)
            await asyncio.sleep(0)
            assert [i for i, _ in drawn] == [0]  # the frame shown; none ahead in that turn
            for _ in range(50 * N_FRAMES):
                if len(drawn) == N_FRAMES:
                    break
                await asyncio.sleep(PAUSE_S / 2)
            return box

        box = asyncio.run(main())
        assert [i for i, _ in drawn] == list(range(N_FRAMES))
        assert {ident for _, ident in drawn} == {threading.get_ident()}
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
            while len(drawn) < 2:
                await asyncio.sleep(PAUSE_S / 2)
            box.close()
            await asyncio.sleep(3 * N_FRAMES * PAUSE_S)

        asyncio.run(main())
        assert 2 <= len(drawn) < N_FRAMES


class TestRunAhead:
    """:func:`kvmviz.widgets.animation_player.run_ahead` against a kernel's message:
    ipykernel serves one over several turns of its event loop (each ``await``), as when a
    Voila page connects."""

    @staticmethod
    def _race(n_tasks: int, handler_turns: int) -> tuple[list, int, int]:
        """Run ``n_tasks`` ahead while a message is served in ``handler_turns`` turns: the
        tasks run in order, how many ran while the message was being served, and all that
        had run when it was answered."""
        done: list[int] = []
        owner = w.HTML()

        def task(i: int) -> None:  # some work, as a simulation is
            time.sleep(0.002)
            done.append(i)

        async def main():
            assert run_ahead([functools.partial(task, i) for i in range(n_tasks)], owner)
            await asyncio.sleep(1.5 * PAUSE_S)  # the first task ran: the loop is busy ahead
            before = len(done)
            for _ in range(handler_turns):  # the message, served turn after turn
                await asyncio.sleep(0)
            during = len(done) - before
            while len(done) < n_tasks:
                await asyncio.sleep(PAUSE_S)
            return during, before + during

        during, answered_after = asyncio.run(main())
        return done, during, answered_after

    def test_a_message_waits_one_task_at_most(self):
        """A message served over 30 turns sees at most one task run meanwhile, so that the
        kernel answers within one task (0.2 s for the dashboard), not after all of them; and
        every task still runs, in order. (Queued turn after turn, 30 tasks ran inside the
        message, and a Voila page's widgets restored 2 s late: "model not found".)"""
        done, during, answered_after = self._race(n_tasks=40, handler_turns=30)
        assert done == list(range(40))
        assert during <= 1, during
        assert answered_after < 40

    def test_nothing_without_a_running_loop(self):
        """A script or a test without an event loop runs nothing ahead and says so."""
        done = []
        assert not run_ahead([functools.partial(done.append, 1)], w.HTML())
        assert done == []

    def test_stops_when_its_owner_closes(self):
        """Closing the owner stops what is still queued."""
        done: list[int] = []
        owner = w.HTML()

        async def main():
            run_ahead([functools.partial(done.append, i) for i in range(20)], owner)
            while not done:
                await asyncio.sleep(PAUSE_S / 2)
            owner.close()
            await asyncio.sleep(25 * PAUSE_S)

        asyncio.run(main())
        assert 1 <= len(done) < 20


class TestTable:
    def test_the_table_has_a_row_per_measure_and_a_column_per_kernel(self):
        """The dashboard's table of :func:`kvmviz.metrics.kernel_table`, transposed so that it
        stays narrow on a zoomed page: one row per column of KERNEL_TABLE_COLUMNS, in order
        (the brownout and its parts in %, the stall per fault, the writers' mean and max wait
        beside it), named by a readable row header; one column per kernel; values as the
        table gives them; only the selected kernel's column highlighted. Under reader-pref
        the writers wait over 100 µs."""
        scenario = kv.Scenario(n_vcpus=64, duration_us=20_000.0)
        runs = {
            "v5.12": kv.simulate(scenario, "v5.12", "reader-pref", seed=0),
            "v5.15": kv.simulate(scenario, "v5.12", "qrwlock", seed=0),
        }
        frame = metrics.kernel_table(runs)
        table = dashboard_module._table_html(frame, selected="v5.15")
        assert table.startswith('<div class="kvmviz-table-box"><table class="kvmviz-summary">')
        rows = re.findall(
            r'<tr data-column="([a-z0-9_]+)"><th scope="row">([^<]+)</th>(.*?)</tr>', table
        )
        assert [c for c, _, _ in rows] == list(KERNEL_TABLE_COLUMNS)
        labels = {c: label for c, label, _ in rows}
        assert labels["brownout_mean"] == "brownout (% of vCPU time)"
        assert labels["brownout_miss"] == "… behind misses (%)"
        assert labels["stall_p99_us"] == "p99 stall per fault (µs)"
        assert labels["writer_wait_mean_us"] == "writers&#x27; mean wait (µs)"
        assert labels["writer_wait_max_us"] == "writers&#x27; max wait (µs)"
        assert re.findall(r'<th scope="col" data-kernel="([^"]+)"', table) == ["v5.12", "v5.15"]
        cells = {
            c: dict(re.findall(r'<td data-kernel="([^"]+)"[^>]*>(.*?)</td>', body))
            for c, _, body in rows
        }
        unfair = frame.loc["v5.12"]
        assert cells["stall_p99_us"]["v5.12"] == f"{unfair['stall_p99_us']:.1f}"
        assert cells["writer_wait_mean_us"]["v5.12"] == f"{unfair['writer_wait_mean_us']:.1f}"
        assert float(cells["writer_wait_max_us"]["v5.12"]) > 100.0
        assert cells["brownout_mean"]["v5.12"] == dashboard_module._percent_cell(
            unfair["brownout_mean"]
        )
        assert cells["lock_taken"]["v5.15"] == str(int(frame.loc["v5.15", "lock_taken"]))
        selected = re.findall(r'data-kernel="([^"]+)" class="kvmviz-selected"', table)
        assert selected == ["v5.15"] * (1 + len(KERNEL_TABLE_COLUMNS))  # its header and cells
        values = [v.lstrip("<") for column in cells.values() for v in column.values()]
        assert np.isfinite([float(v) for v in values]).all()
        # A mapping of kernel to its row gives the same table.
        assert dashboard_module._table_html(dict(frame.iterrows()), selected="v5.15") == table

    def test_percent_cells_write_0_only_for_exactly_0(self):
        """A share of exactly 0 is "0"; a share too small for one decimal is "<0.1", never
        "0.0" (the 8-vCPU VM loses 0.001 %, not nothing)."""
        assert [dashboard_module._percent_cell(v) for v in (0.0, 1e-5, 0.0004, 0.0912)] == [
            "0",
            "<0.1",
            "<0.1",
            "9.1",
        ]


def _data(html_text: str) -> dict:
    """The data attributes of the headline (what ui-tests/test_dashboard.py reads)."""
    return dict(re.findall(r'data-([a-z0-9-]+)="([^"]*)"', html_text))


def _big(html_text: str) -> str:
    """The big number of the headline, as shown."""
    return html.unescape(re.search(r'<span class="kvmviz-big">([^<]*)</span>', html_text)[1])


def _visible_notes(ax) -> dict:
    return {
        t.get_gid(): t.get_text()
        for t in ax.texts
        if (t.get_gid() or "").startswith("note|") and t.get_visible()
    }


def _shown_lines(ax) -> dict:
    """The brownout lines drawn, by kernel."""
    return {
        line.get_gid().split("|")[1]: line
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith("brownout|") and line.get_visible()
    }


def _shown_bars(ax) -> dict:
    """{(kernel, part): (x, height)} of the split's parts drawn."""
    return {
        tuple(p.get_gid().split("|")[1:]): (p.get_x() + p.get_width() / 2, p.get_height())
        for p in ax.patches
        if (p.get_gid() or "").startswith("split|") and p.get_visible()
    }


class TestDashboard:
    def test_it_opens_on_the_static_setup_with_a_setup_toggle(self, dashboard):
        """The setup toggle offers kvmviz.presets.SETUPS and shows the static one; the
        scenario is the dashboard's VM with the static setup's notifications (every one
        spurious, 2,000/s) and the sliders at those values. The toggles are one row, over
        the headline and the figure; the introduction, the sliders and the table are folded
        under it, all closed."""
        assert list(dashboard.setup.options) == list(kv.presets.SETUPS) == ["static", "volatile"]
        assert dashboard.setup.value == "static"
        static = kv.presets.static_setup()
        scenario = dashboard.scenario
        assert (scenario.spurious_share, scenario.notifier_rate_hz) == (1.0, 2_000.0)
        assert (scenario.n_vcpus, scenario.duration_us) == (32, 5_000.0)  # the VM's own
        assert scenario.relevant_mix == static.relevant_mix
        assert (dashboard.spurious.value, dashboard.rate.value) == (1.0, 2_000.0)
        _style, screen, details, _timing = dashboard.widget.children
        toggles, headline, image = screen.children
        assert toggles.children == (dashboard.kernel, dashboard.setup, dashboard.mmu)
        assert (headline, image) == (dashboard.headline, dashboard.image)
        assert details is dashboard.details and details.selected_index is None
        assert details.titles == (
            "What am I looking at?", "Change the VM", "Numbers for every kernel"
        )  # fmt: skip
        assert details.children[0] is dashboard.intro and details.children[2] is dashboard.table
        assert details.children[1].children == (dashboard.vcpus, dashboard.spurious, dashboard.rate)
        assert {t.style.button_width for t in toggles.children} == {"auto"}  # labels in full
        assert "kvmviz-dashboard" in dashboard.widget._dom_classes
        assert "kvmviz-projector" not in dashboard.widget._dom_classes
        assert _data(dashboard.headline.value)["setup"] == "static"

    def test_the_kernel_toggle_reaches_today(self, dashboard):
        """The toggle offers the six milestones of kv.KERNELS, 2021 to v6.18, each button's
        tooltip its label; the dashboard opens on any of them in any spelling ("6.18"), the
        headline names the kernel's label, and its table has a column per milestone. The
        introduction says what today's kernels change (the pre-check, change_pte's removal,
        lockless aging) and that v5.15's rule for misses still holds."""
        assert list(dashboard.kernel.options) == list(kv.KERNELS)
        assert len(kv.KERNELS) == 6 and kv.KERNELS[-1] == "v6.18"
        assert list(dashboard.kernel.tooltips) == [
            kv.theme.KERNEL_STYLES[k]["label"] for k in kv.KERNELS
        ]
        columns = re.findall(r'<th scope="col" data-kernel="([^"]+)"', dashboard.table.value)
        assert columns == list(kv.KERNELS)
        intro = dashboard.intro.value
        for words in ("v5.15's rule for spurious notifications", "d02c357e5bfa",
                      "f3b65bbaed7c", "aa34b811650c"):  # fmt: skip
            assert words in intro, words
        today = widgets.toggle_dashboard(DASHBOARD, seed=0, kernel="6.18")
        assert today.kernel.value == "v6.18"
        data = _data(today.headline.value)
        assert data["kernel"] == "v6.18" and float(data["brownout"]) == 0.0  # static: misses
        assert "v6.18 (mainline)" in today.headline.value
        assert widgets.controls.check_kernel("6.8.0-49-generic") == "v6.8"

    def test_the_default_dashboard_is_the_presets_exactly(self):
        """With no scenario, each setup is its preset: the same runs as chapter 04's."""
        for name in kv.presets.SETUPS:
            assert kv.presets.with_setup(kv.Scenario(), name) == kv.presets.setup(name)

    def test_runs_the_other_mmu_ahead_one_kernel_at_a_time(self, monkeypatch):
        """Under an event loop, the dashboard queues the other MMU of both setups to run
        ahead, in steps of one simulation at most (a kernel's message waits one step:
        TestRunAhead); once they ran, flipping the MMU in either setup simulates nothing."""
        queued = []
        monkeypatch.setattr(
            dashboard_module, "run_ahead", lambda tasks, owner: queued.extend(tasks) or True
        )
        scenario = DASHBOARD.replace(n_vcpus=40)  # runs no other test has cached
        board = widgets.toggle_dashboard(scenario, seed=0, kernel="v6.8")
        assert len(queued) == len(kv.presets.SETUPS) * (len(kv.KERNELS) + 1)
        simulated = []
        for task in queued:
            misses = widgets.cached_simulate.cache_info().misses
            task()
            simulated.append(widgets.cached_simulate.cache_info().misses - misses)
        assert max(simulated) == 1 and sum(simulated) == len(queued) - 2, simulated
        misses = widgets.cached_simulate.cache_info().misses
        board.mmu.value = not board.mmu.value
        board.setup.value = "volatile"
        assert _data(board.headline.value)["mmu"] == "shadow"
        assert widgets.cached_simulate.cache_info().misses == misses

    def test_switching_setup_resets_the_sliders_and_simulates_nothing_new(self, dashboard):
        """Moving the sliders, then switching setup, puts the sliders back to the new setup's
        values and redraws once; the other setup was simulated ahead, so nothing is simulated
        (and a flip back costs nothing either)."""
        dashboard.vcpus.value = 48
        dashboard.spurious.value = 0.7
        misses = widgets.cached_simulate.cache_info().misses
        dashboard.setup.value = "volatile"
        assert widgets.cached_simulate.cache_info().misses == misses
        volatile = kv.presets.with_setup(DASHBOARD, "volatile")
        assert dashboard.scenario == volatile
        assert (dashboard.vcpus.value, dashboard.rate.value) == (32, 5_000.0)
        assert dashboard.spurious.value == pytest.approx(0.4)
        assert _data(dashboard.headline.value)["setup"] == "volatile"
        dashboard.setup.value = "static"
        assert widgets.cached_simulate.cache_info().misses == misses
        assert dashboard.scenario == kv.presets.with_setup(DASHBOARD, "static")

    def test_the_headline_and_table_follow_the_kernel_toggle(self, dashboard):
        """Flipping the toggle re-renders the headline (its data attributes read by
        ui-tests/test_dashboard.py) from the per-kernel table, without simulating again: the
        big number is the selected kernel's brownout, v5.12's beside it."""
        table = metrics.kernel_table(dashboard.runs())
        for kernel in ("v5.15", "v5.13", "v5.12"):
            misses = widgets.cached_simulate.cache_info().misses
            dashboard.kernel.value = kernel
            assert widgets.cached_simulate.cache_info().misses == misses
            s, data = table.loc[kernel], _data(dashboard.headline.value)
            assert (data["kernel"], data["mmu"], data["setup"]) == (kernel, "tdp", "static")
            assert data["p99-us"] == f"{s['stall_p99_us']:.3f}"
            for key in ("brownout", "brownout-miss", "brownout-hit", "brownout-fault"):
                column = key.replace("-", "_").replace("brownout", "brownout_mean", 1)
                column = column if key == "brownout" else key.replace("-", "_")
                assert data[key] == f"{s[column]:.5f}"
            big = html.unescape(dashboard_module._big_percent(s["brownout_mean"]))
            assert _big(dashboard.headline.value) == big
            reference = re.search(r"v5.12: <b>([^<]+)</b>", dashboard.headline.value)
            if kernel == "v5.12":
                assert reference is None  # no comparison with itself
            else:
                shown = html.unescape(reference[1])
                assert shown == html.unescape(
                    dashboard_module._big_percent(table.loc["v5.12"].brownout_mean)
                )
            assert f'<td data-kernel="{kernel}" class="kvmviz-selected">' in dashboard.table.value
        # v5.12 takes the lock on every callback: none skipped it.
        lock_taken = int(table.loc["v5.12", "lock_taken"])
        assert f"0 of {lock_taken} callbacks skipped the lock." in dashboard.headline.value

    def test_v515_on_the_static_setup_stalls_nothing_and_says_so(self, dashboard):
        """Static setup, v5.15: the brownout shown is exactly 0, and the sentence and both
        stall views say in words that no vCPU stalled, and why."""
        dashboard.kernel.value = "v5.15"
        data = _data(dashboard.headline.value)
        assert float(data["brownout"]) == 0.0 and data["kernel"] == "v5.15"
        assert (
            "<b>v5.15: no vCPU stalled</b>: every notification missed guest memory and skipped "
            "the lock."
        ) in dashboard.headline.value
        assert _big(dashboard.headline.value) == "0%"
        assert _visible_notes(dashboard.ax_brownout) == {"note|v5.15": "v5.15: no vCPU stalled"}
        assert _visible_notes(dashboard.ax_split) == {"note|v5.15": "no fault\nstalled"}

    def test_v515_on_the_volatile_setup_stalls_behind_hits_only(self, dashboard):
        """Volatile setup, v5.15: a brownout above 0, none of it behind misses, all behind hits;
        the sentence gives the split and the figure's notes are gone."""
        dashboard.kernel.value = "v5.15"
        dashboard.setup.value = "volatile"
        data = _data(dashboard.headline.value)
        assert float(data["brownout"]) > 0 and float(data["brownout-miss"]) == 0
        assert float(data["brownout-hit"]) == pytest.approx(float(data["brownout"]), abs=1e-5)
        share = dashboard_module._percent(float(data["brownout"]))
        assert (
            f"Of it, 0% behind notifications that missed guest memory (spurious) and {share} "
            "behind ones that hit it"
        ) in dashboard.headline.value
        assert "no vCPU stalled" not in dashboard.headline.value
        for ax in (dashboard.ax_brownout, dashboard.ax_split):
            assert _visible_notes(ax) == {}

    def test_at_8_vcpus_the_sentence_says_every_kernel_loses_almost_nothing(self, dashboard):
        """At 8 vCPUs every kernel's brownout rounds to 0: the sentence says so in words (and
        never "0.0 %" for a share that is not 0), and names the VM's size."""
        dashboard.vcpus.value = 8
        table = metrics.kernel_table(dashboard.runs())
        assert (100 * table["brownout_mean"] < 0.05).all()
        text = dashboard.headline.value
        assert "With 8 vCPUs every kernel loses" in text and "416" not in text
        assert "0.0%" not in text
        assert _data(text)["vcpus"] == "8"

    def test_the_figure_shows_the_chosen_kernel_against_v512_only(self, dashboard):
        """The brownout curve and the split bars show v5.12 (the reference, thin) and the
        selected kernel (bold), nothing of the third: its line, note, legend entry and bars
        are hidden. The split's bars close up, v5.12's first, each kernel named under its
        bar. A kernel flipped to after a new scenario shows that scenario's data."""
        dashboard.setup.value = "volatile"  # every kernel stalls: a bar each
        table = metrics.kernel_table(dashboard.runs())
        for selected in ("v5.13", "v5.15", "v5.12", "v5.13"):
            dashboard.kernel.value = selected
            shown = ["v5.12"] if selected == "v5.12" else ["v5.12", selected]
            assert dashboard.shown == tuple(shown)
            lines = _shown_lines(dashboard.ax_brownout)
            assert list(lines) == shown
            assert lines[selected].get_linewidth() == 2.6
            if selected != "v5.12":
                assert lines["v5.12"].get_linewidth() < lines[selected].get_linewidth()
            for kernel, line in lines.items():  # this scenario's curve, not an older one's
                curve = metrics.brownout(dashboard.runs()[kernel])
                np.testing.assert_allclose(line.get_ydata(), 100 * curve["stalled_share"])
            legend = [t.get_text() for t in dashboard.ax_brownout.get_legend().get_texts()]
            assert legend == [kv.theme.KERNEL_STYLES[k]["label"] for k in shown]
            bars = _shown_bars(dashboard.ax_split)
            assert {kernel for kernel, _part in bars} == set(shown)
            for (kernel, part), (x, height) in bars.items():
                assert x == pytest.approx(shown.index(kernel))  # closed up, in order
                assert height == pytest.approx(100 * table.loc[kernel, f"brownout_{part}"])
            ticks = [t.get_text() for t in dashboard.ax_split.get_xticklabels()]
            assert ticks == [metric_labels.kernel_tick(k) for k in shown]
            hidden = [t for t in dashboard.ax_split.texts if t.get_visible()]
            assert not [t.get_gid() for t in hidden if not any(k in t.get_gid() for k in shown)]

    def test_the_y_scale_follows_the_scenario_not_the_kernel(self, dashboard):
        """A flip of the kernel keeps both y axes (so the bars and lines compare); a new
        scenario fits them to its highest curve and bar, on every kernel."""
        limits = (dashboard.ax_brownout.get_ylim(), dashboard.ax_split.get_ylim())
        runs = dashboard.runs()
        peak = max(100 * metrics.brownout(r)["stalled_share"].max() for r in runs.values())
        assert peak <= limits[0][1] <= 100 and limits[0][1] < 1.5 * max(peak, 1) + 10
        tallest = 100 * metrics.kernel_table(runs)["brownout_mean"].max()
        assert limits[1][1] == pytest.approx(1.65 * tallest)
        for kernel in ("v5.13", "v5.15"):
            dashboard.kernel.value = kernel
            assert (dashboard.ax_brownout.get_ylim(), dashboard.ax_split.get_ylim()) == limits
        dashboard.setup.value = "volatile"
        tallest = 100 * metrics.kernel_table(dashboard.runs())["brownout_mean"].max()
        assert dashboard.ax_split.get_ylim()[1] == pytest.approx(1.65 * tallest)
        assert dashboard.ax_split.get_ylim() != limits[1]

    def test_the_introduction_follows_the_sliders(self, dashboard):
        """The folded introduction is written from the scenario the controls describe: the
        VM's size, how many notifications arrive a second and how many are spurious, and this
        scenario's brownout on every kernel; it never names a size the VM does not have."""
        intro = dashboard.intro.value
        assert "A 32-vCPU VM with 12 TiB of memory" in intro and "416" not in intro
        assert "2,000 MMU notifications a second. Every one of them is spurious" in intro
        assert "This is the static setup of 8931a454ae's message." in intro
        dashboard.vcpus.value = 48
        dashboard.rate.value = 1_000
        dashboard.spurious.value = 0.7
        intro = dashboard.intro.value
        assert "A 48-vCPU VM" in intro and "32-vCPU" not in intro
        assert "1,000 MMU notifications a second. 70% of them are spurious" in intro
        assert "the other 30% hit guest memory" in intro
        assert "This is the static setup as the sliders changed it." in intro
        table = metrics.kernel_table(dashboard.runs())
        numbers = ", ".join(
            f"{k} {dashboard_module._percent(table.loc[k, 'brownout_mean'])}" for k in kv.KERNELS
        )
        assert f"Here the brownout is: {numbers}." in intro
        dashboard.kernel.value = "v5.15"  # the kernel is not the scenario: same words
        assert dashboard.intro.value == intro
        dashboard.setup.value = "volatile"
        assert "hit guest memory" in dashboard.intro.value
        assert "barely qualifies as an optimization" in dashboard.intro.value
        dashboard.mmu.value = False
        assert "taking KVM's <code>mmu_lock</code> for <i>write</i> (the shadow MMU)" in (
            dashboard.intro.value
        )
        assert "behind other faults only" in dashboard.intro.value

    def test_at_8_vcpus_the_introduction_says_every_kernel_loses_nothing_and_why(self, dashboard):
        """At 8 vCPUs every kernel's brownout rounds to 0: the introduction names the 8-vCPU
        VM (never the 416-vCPU one) and says in words why nothing is lost."""
        dashboard.vcpus.value = 8
        table = metrics.kernel_table(dashboard.runs())
        assert (100 * table["brownout_mean"] < 0.05).all()
        intro = dashboard.intro.value
        assert "An 8-vCPU VM" in intro and "416" not in intro
        words = "nothing" if (table["brownout_mean"] == 0).all() else "under 0.1%"
        assert f"With 8 vCPUs every kernel loses {words} of the VM's vCPU time" in intro
        assert "few faults are in flight when a notifier takes the lock" in intro
        assert "0.0%" not in intro

    def test_a_slider_moves_the_range_bars_of_the_map(self, dashboard):
        """A new scenario redraws the map's range bars as one path per row: one rectangle (5
        vertices) per notification event of the selected run, hits and misses apart."""
        dashboard.setup.value = "volatile"
        dashboard.vcpus.value = 40
        events = classify.first_callbacks(dashboard.runs()["v5.12"].notifiers)
        hits = int(events["hit"].sum())
        assert 0 < hits < len(events)
        expected = {"hit": hits, "wide": 0, "miss": len(events) - hits}
        for kind, collection in dashboard._span_collections.items():
            paths = collection.get_paths()
            assert sum(len(path.vertices) for path in paths) == 5 * expected[kind]

    def test_the_image_is_the_figure_as_png(self, dashboard):
        """The image is the 11.9 x 5.3 in figure at 85 dpi (1,011 x 450 px) in a notebook, RGB,
        and returning to a scenario gives the same picture again."""
        first = dashboard.image.value
        with PIL.Image.open(io.BytesIO(first)) as image:
            assert (image.size, image.mode) == ((1011, 450), "RGB")
        dashboard.vcpus.value = 40
        assert dashboard.image.value != first
        dashboard.vcpus.value = DASHBOARD.n_vcpus
        assert dashboard.image.value == first
        dashboard.setup.value = "volatile"
        assert dashboard.image.value != first
        dashboard.setup.value = "static"
        assert dashboard.image.value == first

    @pytest.mark.parametrize("projector", [False, True])
    def test_a_flip_shows_the_picture_of_a_dashboard_opened_there(self, projector):
        """A redraw moves only what changes and restores the axes and legends of a look seen
        before from their pixels: the picture after any sequence of flips is the very one a
        dashboard opened on that kernel and setup shows, pixel for pixel."""
        dashboard = widgets.toggle_dashboard(DASHBOARD, seed=0, projector=projector)
        for setup, kernel in [("volatile", "v5.13"), ("volatile", "v5.15"), ("static", "v5.15"),
                              ("static", "v5.12"), ("volatile", "v5.12")]:  # fmt: skip
            dashboard.setup.value, dashboard.kernel.value = setup, kernel
            fresh = widgets.toggle_dashboard(
                DASHBOARD, seed=0, kernel=kernel, setup=setup, projector=projector
            )
            with PIL.Image.open(io.BytesIO(dashboard.image.value)) as a:
                with PIL.Image.open(io.BytesIO(fresh.image.value)) as b:
                    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), (setup, kernel))

    def test_on_a_projector_the_figure_is_large_and_its_text_at_least_20_px(self):
        """projector=True: the widget carries the projector's CSS class and rules (text at
        least 20 px on a 1080p screen, the figure capped at its pixels over the screen's
        pixel ratio), and the figure is 1,904 x 848 px, every text in it at least 20 px
        high and inside the figure, whichever kernel, setup and MMU."""
        dashboard = widgets.toggle_dashboard(DASHBOARD, seed=0, projector=True)
        assert "kvmviz-projector" in dashboard.widget._dom_classes
        style = dashboard.widget.children[0].value
        assert ".kvmviz-dashboard.kvmviz-projector {" in style
        assert "--kvmviz-font: max(16px, 1.9vh);" in style
        assert "max-width: 1904px;" in style and "max-width: calc(1904px / 2);" in style
        assert "min-resolution: 2dppx" in style
        figure = dashboard.figure
        for kernel, setup, mmu in itertools.product(
            kv.KERNELS, ("static", "volatile"), (True, False)
        ):
            dashboard.setup.value, dashboard.mmu.value, dashboard.kernel.value = setup, mmu, kernel
            with PIL.Image.open(io.BytesIO(dashboard.image.value)) as image:
                assert image.size == (1904, 848)
            renderer = dashboard.canvas.get_renderer()
            texts = [
                t
                for t in figure.findobj(matplotlib.text.Text)
                if t.get_visible() and t.get_text().strip()
            ]
            assert texts
            for text in texts:
                px = text.get_fontsize() * figure.dpi / 72
                assert px >= 20.0, (text.get_text(), px, kernel, setup, mmu)
            for ax in figure.axes:
                box = ax.get_tightbbox(renderer)
                assert figure.bbox.x0 <= box.x0 and box.x1 <= figure.bbox.x1 + 1, ax.get_title()
                assert figure.bbox.y0 <= box.y0 and box.y1 <= figure.bbox.y1 + 1, ax.get_title()

    def test_an_unknown_setup_or_kernel_is_refused(self):
        with pytest.raises(ValueError, match="setup 'calm': expected one of static, volatile"):
            widgets.toggle_dashboard(DASHBOARD, setup="calm")
        with pytest.raises(ValueError, match=r"kernel 'v6\.1': expected one of"):
            widgets.toggle_dashboard(DASHBOARD, kernel="v6.1")


# -- the zoomable lock timeline ---------------------------------------------------------------
# The default VM for 5 ms: quick to simulate at both sizes, a writer wait in every kernel.
TIMELINE = kv.Scenario(duration_us=5_000.0)


@pytest.fixture
def explorer():
    return widgets.timeline_explorer(TIMELINE, seed=0, kernel="v5.12", n_vcpus=416)


def _window_label(explorer) -> dict:
    """The data attributes of the label under the controls (what ui-tests/test_lab.py reads)."""
    return dict(re.findall(r'data-([a-z-]+)="([^"]+)"', explorer.label.value))


def _lanes(explorer) -> list[str]:
    return [t.get_text() for t in explorer.timeline.lanes.get_yticklabels()]


class TestTimelineExplorer:
    def test_the_slider_sets_the_axes_x_limits_to_the_window(self, explorer):
        """Moving the range slider redraws the timeline on that window: both axes' x limits are
        the window (in µs below 2 ms, in ms from 2 ms on), and so is the label."""
        lanes, queue = explorer.timeline.lanes, explorer.timeline.queue
        first = explorer.image.value
        explorer.window.value = (1_000.0, 1_400.0)
        assert lanes.get_xlim() == queue.get_xlim() == (1_000.0, 1_400.0)
        assert explorer.timeline.xlim_us() == (1_000.0, 1_400.0)
        label = _window_label(explorer)
        assert (label["start-us"], label["end-us"]) == ("1000.000", "1400.000")
        assert (label["kernel"], label["vcpus"]) == ("v5.12", "416")
        assert explorer.image.value != first
        explorer.window.value = (500.0, 4_500.0)
        assert lanes.get_xlim() == (0.5, 4.5) and "(ms)" in queue.get_xlabel()
        assert explorer.timeline.xlim_us() == (500.0, 4_500.0)

    def test_zoom_and_pan_buttons_move_the_window(self, explorer):
        """Zoom in halves the window about its centre, zoom out doubles it, pan moves it by half
        its width; none leaves the run, and the axes follow each click."""
        explorer.set_window(2_000, 3_000)
        explorer.zoom_in.click()
        assert explorer.window.value == (2_250.0, 2_750.0)
        assert explorer.timeline.lanes.get_xlim() == (2_250.0, 2_750.0)
        explorer.pan_right.click()
        assert explorer.window.value == (2_500.0, 3_000.0)
        explorer.pan_left.click()
        explorer.pan_left.click()
        assert explorer.window.value == (2_000.0, 2_500.0)
        explorer.zoom_out.click()
        assert explorer.window.value == (1_750.0, 2_750.0)
        explorer.set_window(4_000, 5_000)
        explorer.pan_right.click()  # already at the end of the run
        assert explorer.window.value == (4_000.0, 5_000.0)
        explorer.zoom_out.click()  # 2 ms about 4.5 ms does not fit: kept inside the run
        assert explorer.window.value == (3_000.0, 5_000.0)
        explorer.whole.click()
        assert explorer.timeline.xlim_us() == (0.0, 5_000.0)
        explorer.busiest.click()
        assert explorer.window.value == explorer._rounded(*explorer.busiest_window())

    def test_the_kernel_toggle_keeps_the_window_and_changes_the_run(self, explorer):
        """Flipping the kernel redraws the same window from that kernel's run: the limits stay,
        the title names the kernel, and v5.15's callbacks that skip the lock are drawn (v5.12
        has none); nothing is simulated again."""
        explorer.set_window(0, 5_000)
        window = explorer.window.value
        v512 = explorer.image.value
        misses = widgets.cached_simulate.cache_info().misses
        explorer.kernel.value = "v5.15"
        assert widgets.cached_simulate.cache_info().misses == misses
        assert explorer.window.value == window
        assert explorer.timeline.xlim_us() == (0.0, 5_000.0)
        assert explorer.timeline.run is explorer.runs()["v5.15"]
        assert explorer.timeline.run.kernel == "v5.15"
        assert "v5.15" in explorer.timeline.lanes.get_title(loc="left")
        assert _window_label(explorer)["kernel"] == "v5.15"
        assert explorer.image.value != v512
        notifiers = explorer.runs()["v5.15"].notifiers
        skipped = gids(explorer.timeline.lanes, "lane-notifier-skipped")["lane-notifier-skipped"]
        assert len(skipped.get_xdata()) == int((~notifiers["locked"]).sum()) > 0
        explorer.kernel.value = "v5.12"
        skipped = gids(explorer.timeline.lanes, "lane-notifier-skipped")["lane-notifier-skipped"]
        assert len(skipped.get_xdata()) == 0
        assert explorer.image.value == v512  # the same window and run: the same picture

    def test_each_size_draws_its_lanes(self, explorer):
        """At 416 vCPUs the faulting vCPUs are in eight grouped lanes; at 8 each vCPU has its
        lane, with one hold per fault attempt in the window; the window stays when the size
        changes, and each notification event arriving in it is marked."""
        explorer.set_window(1_000, 2_000)
        assert _lanes(explorer) == ["notifiers", *explorer_groups(explorer)]
        drawn = gids(explorer.timeline.lanes, "lane-")
        assert {f"lane-group{i}-{s}" for i in range(8) for s in ("read", "wait")} <= set(drawn)
        assert not any(g.startswith("lane-vcpu") for g in drawn)
        explorer.vcpus.value = 8
        assert explorer.window.value == (1_000.0, 2_000.0)
        assert explorer.timeline.xlim_us() == (1_000.0, 2_000.0)
        assert _lanes(explorer) == ["notifiers", *(f"vCPU {v}" for v in range(8))]
        assert _window_label(explorer)["vcpus"] == "8"
        drawn = gids(explorer.timeline.lanes, "lane-")
        faults = explorer.timeline.run.faults
        shown = faults[(faults["t_request_us"] < 2_000) & (faults["t_release_us"] > 1_000)]
        for v, attempts in shown.groupby("vcpu"):
            assert len(drawn[f"lane-vcpu{v}-read"].get_paths()) == len(attempts)
        events = classify.first_callbacks(explorer.timeline.run.notifiers)
        arriving = events[(events["t_arrive_us"] >= 1_000) & (events["t_arrive_us"] < 2_000)]
        marks = gids(explorer.timeline.lanes, "arrivals-")
        assert len(marks["arrivals-hit"].get_segments()) + len(
            marks["arrivals-miss"].get_segments()
        ) == len(arriving)

    def test_the_image_is_what_lock_timeline_draws(self, explorer):
        """The blitted picture is the figure lock_timeline draws for that window in full, pixel
        for pixel but for a few antialiased ones (a title drawn before, not after, a marker
        that touches it): moving the window never leaves stale pixels behind."""
        for n_vcpus, kernel, window in ((416, "v5.15", (3_000, 3_400)), (8, "v5.12", (0, 5_000))):
            explorer.vcpus.value = n_vcpus
            explorer.kernel.value = kernel
            explorer.set_window(*window)
            timeline = explorer.timeline
            figure = Figure(figsize=(10, 5), dpi=80)
            canvas = FigureCanvasAgg(figure)
            axes = figure.subplots(2, 1, sharex=True)
            for ax, drawn in zip(axes, (timeline.lanes, timeline.queue), strict=True):
                ax.set_position(drawn.get_position())
            kv.timelines.lock_timeline(timeline.run, *window, ax=axes, arrivals=True)
            explorer_module._wrap_title(axes[0])
            canvas.draw()
            want = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
            with PIL.Image.open(io.BytesIO(explorer.image.value)) as image:
                got = np.asarray(image.convert("RGB")).astype(int)
            assert got.shape == want.shape == (400, 800, 3)
            differ = np.abs(got - want).sum(axis=2) > 0
            assert differ.sum() <= 10, (n_vcpus, int(differ.sum()))

    def test_bad_input_is_refused(self, explorer):
        """A window outside the run or ending before it starts, an unknown kernel, a size not
        offered, a zoom factor that is not positive: ValueError naming what was expected, and
        the window shown stays as it was."""
        explorer.set_window(1_000, 2_000)
        for window, message in (
            ((100, 100), "expected end_us after start_us"),
            ((300, 200), "expected end_us after start_us"),
            ((-10, 200), "outside the run: expected 0 <= start_us"),
            ((4_000, 6_000), r"end_us <= 5000 \(its duration_us\)"),
        ):
            with pytest.raises(ValueError, match=message):
                explorer.set_window(*window)
        with pytest.raises(ValueError, match="expected a positive number"):
            explorer.zoom(0)
        with pytest.raises(ValueError, match="expected a number"):
            explorer.pan("later")
        assert explorer.timeline.xlim_us() == (1_000.0, 2_000.0)
        with pytest.raises(ValueError, match=r"kernel 'v5\.14': expected one of v5\.12"):
            widgets.timeline_explorer(TIMELINE, kernel="v5.14")
        with pytest.raises(ValueError, match=r"n_vcpus = 16: expected one of sizes \(8, 416\)"):
            widgets.timeline_explorer(TIMELINE, n_vcpus=16)
        with pytest.raises(ValueError, match="positive integers"):
            widgets.timeline_explorer(TIMELINE, sizes=(8, 0))
        with pytest.raises(ValueError, match="outside the run"):
            widgets.timeline_explorer(TIMELINE, window=(0, 9_000))
        with pytest.raises(traitlets.TraitError):  # the toggle offers the milestones only
            explorer.kernel.value = "v5.14"


def explorer_groups(explorer) -> list[str]:
    """The lane labels of the grouped VM: its faulting vCPUs in eight lanes."""
    faulting = explorer.scenarios[416].n_faulting
    bounds = np.linspace(0, faulting, 9).round().astype(int)
    return [f"vCPUs {a}–{b - 1}" for a, b in itertools.pairwise(bounds)]


# -- the freeze's toggle (chapter 08) ----------------------------------------------------------
def test_freeze_toggle_redraws_what_kernel_and_preemption_pick():
    """The toggle's headline says the run its buttons pick (kernel, preempt=, PREEMPT_DYNAMIC)
    in data attributes equal to kv.metrics.freeze of that run; flipping the kernel to v6.8
    and then the box off changes the numbers and the picture; an unknown position is refused."""
    scene = kv.exercises.FREEZE_SCENE
    toggle = widgets.freeze_toggle(scene, seed=1, kernel="v6.7", preempt="voluntary")

    def shown() -> dict:
        return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', toggle.headline.value))

    first, picture = shown(), toggle.image.value
    run = kv.simulate(scene, "v6.7", seed=1)
    numbers = kv.metrics.freeze(run)
    assert first["kernel"] == "v6.7" and first["preempt"] == "voluntary"
    assert first["dynamic"] == "true"
    assert int(first["yields"]) == int(numbers["yields"]) > 0
    assert int(first["futile-reads"]) == int(numbers["futile_reads"]) > 0
    assert float(first["freeze-ms"]) == pytest.approx(numbers["freeze_max_ms"], rel=1e-5)
    assert PIL.Image.open(io.BytesIO(picture)).size[0] > 500
    toggle.kernel.value = "v6.8"
    after = shown()
    assert after["kernel"] == "v6.8" and int(after["futile-reads"]) < int(first["futile-reads"])
    assert int(after["lockless-retries"]) > 0
    assert toggle.image.value != picture
    toggle.dynamic.value = False
    assert shown()["dynamic"] == "false" and int(shown()["yields"]) == 0
    with pytest.raises(ValueError, match="expected one of"):
        widgets.freeze_toggle(scene, kernel="v5.12")
