"""`kvmviz figures` and kvmviz.gallery.render_all: every figure, reproducibly, never clobbering."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib as mpl
import pytest

from kvmviz import cli, gallery

# Figures whose runs are small (8 vCPUs, or a notification stream alone): fast to render.
CHEAP = ["memslots-q35", "lock-timeline-8-vcpus"]
EXPECTED = [
    "memslots-large-vm",
    "memslots-q35",
    "stall-cdf",
    "brownout",
    "kernel-comparison",
    "stall-by-kernel",
    "lock-timeline-8-vcpus",
    "lock-timeline-416-vcpus",
    "before-after",
]


def _files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_the_figures_of_the_notebooks_and_the_readme():
    assert list(gallery.FIGURES) == EXPECTED


def test_same_seed_same_bytes(tmp_path):
    """Two renders with one seed give byte-identical SVG (and PNG); another seed differs."""
    first = gallery.render_all(tmp_path / "a", only=CHEAP, extra=False)
    gallery.render_all(tmp_path / "b", only=CHEAP, extra=False)
    assert [p.name for p in first] == [f"{n}.{f}" for n in CHEAP for f in ("svg", "png")]
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for path in first:
        if path.suffix == ".svg":
            ET.parse(path)
            assert b"<dc:date>" not in path.read_bytes()
    gallery.render_all(tmp_path / "c", only=["lock-timeline-8-vcpus"], seed=1, extra=False)
    name = "lock-timeline-8-vcpus.svg"
    assert (tmp_path / "c" / name).read_bytes() != (tmp_path / "a" / name).read_bytes()


def test_svg_bytes_do_not_depend_on_the_other_formats_asked_for(tmp_path):
    """`--format png,svg` and `--format svg` give the same SVG (it is always rendered first)."""
    name = "lock-timeline-8-vcpus"
    gallery.render_all(tmp_path / "both", only=[name], formats=("png", "svg"), extra=False)
    gallery.render_all(tmp_path / "svg", only=[name], formats=("svg",), extra=False)
    assert (tmp_path / "both" / f"{name}.svg").read_bytes() == (
        tmp_path / "svg" / f"{name}.svg"
    ).read_bytes()


def test_refuses_to_overwrite_and_writes_nothing(tmp_path):
    """One existing target is enough: nothing at all is written, and it is left alone."""
    (tmp_path / "brownout.png").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="brownout"):
        gallery.render_all(tmp_path, extra=False)
    assert _files(tmp_path) == {"brownout.png": b"keep me"}
    written = gallery.render_all(tmp_path, only=["memslots-q35"], formats=("png",), extra=False)
    assert written == [tmp_path / "memslots-q35.png"]
    gallery.render_all(tmp_path, only=["memslots-q35"], formats=("png",), force=True, extra=False)


def test_theme_does_not_leak(tmp_path):
    """render_all applies the theme for its own figures only."""
    before = dict(mpl.rcParams)
    gallery.render_all(tmp_path, only=["memslots-q35"], formats=("svg",), extra=False)
    assert dict(mpl.rcParams) == before


class _Hook:
    """An export registered in gallery.EXTRA, with the files it would write."""

    def __init__(self):
        self.calls = []

    def targets(self, out_dir, formats):
        return [out_dir / "extra.html"]

    def __call__(self, out_dir, formats, force):
        self.calls.append((out_dir, tuple(formats), force))
        path = out_dir / "extra.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<html></html>")
        return [path]


def test_extra_exports_run_and_are_checked_first(tmp_path, monkeypatch):
    """An extra export writes into the staging folder beside the target (so it may write
    freely there) and lands with the figures; its files count in the refusal to overwrite."""
    hook = _Hook()
    monkeypatch.setattr(gallery, "_load_extras", lambda seed: [hook])
    written = gallery.render_all(tmp_path, only=["memslots-q35"], formats=("svg",))
    assert written == [tmp_path / "extra.html", tmp_path / "memslots-q35.svg"]
    [(staging, formats, force)] = hook.calls
    assert staging.parent == tmp_path.parent and staging.name.startswith(f".{tmp_path.name}.")
    assert (formats, force) == (("svg",), True)
    assert not staging.exists()  # moved into place
    (tmp_path / "memslots-q35.svg").unlink()
    with pytest.raises(FileExistsError, match=r"extra\.html"):
        gallery.render_all(tmp_path, only=["memslots-q35"], formats=("svg",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extra.html"]
    assert len(hook.calls) == 1


def test_extras_are_registered_hooks_plus_animate(monkeypatch):
    """EXTRA's hooks come first; kvmviz.animate's render_all is added unless it registered."""
    hook = _Hook()
    monkeypatch.setattr(gallery, "EXTRA", [hook])
    hooks = gallery._load_extras(seed=0)
    assert hooks[0] is hook
    try:
        from kvmviz import animate
    except ModuleNotFoundError:
        assert hooks == [hook]
    else:
        assert len(hooks) == 1 + callable(getattr(animate, "render_all", None))


def test_unknown_names_and_formats_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown figures"):
        gallery.render_all(tmp_path, only=["nope"], extra=False)
    with pytest.raises(ValueError, match="formats"):
        gallery.render_all(tmp_path, formats=("svg", "bmp"), extra=False)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_cli_figures_end_to_end(tmp_path, capsys):
    """`kvmviz figures` writes every figure and prints each path; run again without --force,
    it exits 2, says why, and writes nothing."""
    out = tmp_path / "figs"
    args = ["figures", "--out", str(out), "--format", "svg", "--no-animations"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("# kvmviz figures --out")
    assert printed[1:] == [str(out / f"{name}.svg") for name in EXPECTED]
    for name in EXPECTED:
        root = ET.parse(out / f"{name}.svg").getroot()
        assert root.tag.endswith("svg")
    before = _files(out)
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    assert "refusing to overwrite" in error and "nothing was written" in error
    assert _files(out) == before
    assert cli.main(["figures", "--out", str(out), "--format", "svg,gif"]) == 2
    assert "unknown format" in capsys.readouterr().err


def test_cli_still_simulates_and_quizzes(capsys):
    assert cli.main(["quiz", "takes-lock", "-s", "1"]) == 0
    assert "Answer: ?" in capsys.readouterr().out
    assert cli.main(["simulate", "--vcpus", "8", "--duration-ms", "2"]) == 0
    assert "p99_us" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["lock-timeline-8-vcpus", "lock-timeline-416-vcpus"])
def test_timeline_figures_show_whole_stalls(name):
    """The timeline figures' windows (kvmviz.metrics.busiest_window) hold the longest writer wait
    and cut no stall: every wait for mmu_lock that overlaps the window begins and ends in it."""
    render = gallery._Render(0)
    fig = gallery.FIGURES[name](render)
    lanes = fig.axes[0]
    run = render.run(gallery.SMALL_VM if "8" in name else gallery.LARGE_VM, "v5.12")
    scale = 1e-3 if "(ms)" in fig.axes[1].get_xlabel() else 1.0
    start, end = (x / scale for x in lanes.get_xlim())
    waited = run.lock[run.lock["wait_us"] > 0]
    overlapping = waited[(waited["t_request_us"] < end) & (waited["t_grant_us"] > start)]
    assert len(overlapping) > 0
    tolerance = 1e-6 * max(abs(end), 1.0)
    assert (overlapping["t_request_us"] >= start - tolerance).all()
    assert (overlapping["t_grant_us"] <= end + tolerance).all()
    worst = run.notifiers.loc[run.notifiers["wait_us"].idxmax()]
    assert start <= worst["t_arrive_us"] and worst["t_grant_us"] <= end


def test_stall_by_kernel_figure_has_both_panels():
    """The static per-kernel figure: a CDF line and a p99 bar for each kernel."""
    fig = gallery.FIGURES["stall-by-kernel"](gallery._Render(0))
    cdf, bars = fig.axes
    assert [line.get_gid() for line in cdf.get_lines()] == [f"cdf|{k}" for k in gallery.KERNELS]
    assert [p.get_gid() for p in bars.patches if p.get_gid()] == [
        f"bar|{k}" for k in gallery.KERNELS
    ]
