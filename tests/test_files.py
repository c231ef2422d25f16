"""kvmviz._shared._files: whole files or none, and never over an existing one, even under a race.

The races are real: two processes stage their sets, meet at a barrier, and move them in at
the same instant; exactly one set ends up in the folder, whole, and the loser has left
nothing. Each no-replace primitive (renameat2, link then unlink, check then rename) is run on
its own by switching the others off.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmviz._shared import _files, _signals

PRIMITIVES = ["renameat2", "link", "rename"]


@pytest.fixture(params=PRIMITIVES)
def primitive(request, monkeypatch):
    """Run the test with one no-replace primitive: the others switched off."""
    if request.param == "renameat2" and _files._renameat2 is None:
        pytest.skip("no renameat2 in this libc")
    if request.param != "renameat2":
        monkeypatch.setattr(_files, "_renameat2", None)
    if request.param == "rename":

        def no_link(src, dst):
            raise OSError(errno.EPERM, "Operation not permitted (a FAT file system)", src)

        monkeypatch.setattr(_files.os, "link", no_link)
    return request.param


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- the no-replace move ----------------------------------------------------------------------
def test_move_noreplace_moves_to_a_free_name_and_refuses_a_taken_one(tmp_path, primitive):
    (tmp_path / "a").write_text("new")
    _files.move_noreplace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_text() == "new" and not (tmp_path / "a").exists()
    (tmp_path / "c").write_text("other")
    with pytest.raises(FileExistsError) as caught:
        _files.move_noreplace(tmp_path / "c", tmp_path / "b")
    assert caught.value.filename == str(tmp_path / "b")
    assert (tmp_path / "b").read_text() == "new"  # untouched
    assert (tmp_path / "c").read_text() == "other"  # left where it was


def test_move_noreplace_moves_a_folder_only_to_a_free_name(tmp_path, primitive):
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "f").write_text("x")
    (tmp_path / "out").mkdir()  # an empty folder is taken too: rename(2) would replace it
    with pytest.raises(FileExistsError):
        _files.move_noreplace(tmp_path / "stage", tmp_path / "out")
    _files.move_noreplace(tmp_path / "stage", tmp_path / "free")
    assert (tmp_path / "free" / "f").read_text() == "x"


# -- the three writers ------------------------------------------------------------------------
def test_write_atomic_refuses_a_file_that_appears_after_the_check(tmp_path, primitive, monkeypatch):
    """The pre-check passes; a file then appears (another run): nothing of the set is left,
    the stranger's file is intact, and the error names it."""
    targets = {tmp_path / "x.svg": b"mine-x", tmp_path / "y.svg": b"mine-y"}
    commit = _files._commit

    def late(pairs, force):
        (tmp_path / "y.svg").write_bytes(b"theirs")
        return commit(pairs, force)

    monkeypatch.setattr(_files, "_commit", late)
    with pytest.raises(FileExistsError, match="appeared while this run was writing"):
        _files.write_atomic(targets)
    assert (tmp_path / "y.svg").read_bytes() == b"theirs"
    assert not (tmp_path / "x.svg").exists()  # taken back out: all or none
    assert _leftovers(tmp_path) == []


def test_open_atomic_streams_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "deep" / "t.pftrace"
    with pytest.raises(RuntimeError), _files.open_atomic(target) as handle:
        handle.write(b"half")
        raise RuntimeError("the encoder failed")
    assert not (tmp_path / "deep").exists()  # the folder it created is gone too
    with _files.open_atomic(target) as handle:
        handle.write(b"whole")
        assert not target.exists()  # invisible until complete
    assert target.read_bytes() == b"whole"
    assert (target.stat().st_mode & 0o777) == 0o666 & ~_files.umask()
    with pytest.raises(FileExistsError), _files.open_atomic(target) as handle:
        pass
    with _files.open_atomic(target, force=True) as handle:
        handle.write(b"again")
    assert target.read_bytes() == b"again" and _leftovers(target.parent) == []


def test_staged_files_are_all_moved_or_none(tmp_path):
    targets = [tmp_path / "a.json", tmp_path / "b.json"]
    with pytest.raises(KeyboardInterrupt), _files.staged_files(targets) as temporaries:
        temporaries[0].write_bytes(b"a")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with _files.staged_files(targets) as temporaries:
        for tmp, payload in zip(temporaries, (b"a", b"b"), strict=True):
            tmp.write_bytes(payload)
    assert [t.read_bytes() for t in targets] == [b"a", b"b"]
    assert _leftovers(tmp_path) == []


def test_staged_folder_moves_a_new_folder_whole_and_merges_into_an_old_one(tmp_path, primitive):
    out = tmp_path / "figs"
    with _files.staged_folder(out) as stage:
        stage.write("one.svg", b"1")
        stage.write("sub/two.svg", b"2")
    assert stage.files == [out / "one.svg", out / "sub" / "two.svg"]
    assert (out / "sub" / "two.svg").read_bytes() == b"2"
    with pytest.raises(FileExistsError), _files.staged_folder(out) as stage:
        stage.write("three.svg", b"3")
        stage.write("one.svg", b"other")  # taken: the whole set is refused
    assert sorted(p.name for p in out.iterdir()) == ["one.svg", "sub"]
    assert (out / "one.svg").read_bytes() == b"1"
    with _files.staged_folder(out, force=True) as stage:
        stage.write("one.svg", b"replaced")
    assert (out / "one.svg").read_bytes() == b"replaced"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", ["", "a\0b", "x" * 256, "d/" + "y" * 300 + "/f", "/z" * 2100])
def test_a_path_no_file_system_could_hold_is_refused_before_any_work(tmp_path, bad):
    with pytest.raises(ValueError, match=r"empty|NUL|bytes long"):
        _files.write_atomic({bad: b"x"})
    with pytest.raises(ValueError), _files.staged_folder(bad):
        pass


@pytest.mark.parametrize("force", ["no", 0, 1, None, "False"])
def test_force_must_be_a_boolean(tmp_path, force):
    """``force="no"`` used to mean True and overwrite."""
    with pytest.raises(TypeError, match="force"):
        _files.write_atomic({tmp_path / "x": b"x"}, force=force)


def test_a_long_target_name_still_has_room_for_its_temporary_name(tmp_path):
    name = "n" * 255  # the longest name allowed; the temporary one must not exceed it
    (path,) = _files.write_atomic({tmp_path / name: b"x"})
    assert path.read_bytes() == b"x"


# -- races between processes ------------------------------------------------------------------
def _racer(out: str, tag: str, barrier, results) -> None:
    try:
        with _files.staged_folder(Path(out)) as stage:
            for i in range(20):
                stage.write(f"f{i:02d}.svg", tag.encode())
            barrier.wait(timeout=30)  # both sets complete: now move them in together
        results.put((tag, "won"))
    except FileExistsError as error:
        results.put((tag, f"lost: {error}"))


@settings(max_examples=6, deadline=None)
@given(existing=st.booleans())
def test_of_two_runs_writing_one_folder_exactly_one_wins_whole(tmp_path_factory, existing):
    """Two processes stage 20 files each and move them in at the same instant, into a new
    folder or an existing one: one wins, the folder holds its 20 files and none of the other's,
    the other says which file it found taken, and nothing staged is left."""
    root = tmp_path_factory.mktemp("race")
    out = root / "figs"
    if existing:
        out.mkdir()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_racer, args=(str(out), t, barrier, results)) for t in "AB"]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    outcome = dict(results.get(timeout=5) for _ in racers)
    winners = [tag for tag, what in outcome.items() if what == "won"]
    assert len(winners) == 1, outcome
    (loser,) = set(outcome) - set(winners)
    assert "appeared while this run was writing" in outcome[loser]
    contents = {p.read_bytes() for p in out.iterdir()}
    assert contents == {winners[0].encode()} and len(list(out.iterdir())) == 20
    assert _leftovers(root) == []


# -- signals ----------------------------------------------------------------------------------
def test_a_signal_during_the_move_waits_until_the_set_is_in(tmp_path, monkeypatch):
    """SIGTERM arriving between two moves of a set is held: the set is moved whole, then the
    signal reaches its handler (here Interrupted, as the command line installs)."""
    moved = []
    move = _files.move_noreplace

    def slow(source, target):
        move(source, target)
        moved.append(target)
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_files, "move_noreplace", slow)
    files = {tmp_path / f"{i}.png": b"x" for i in range(5)}
    with _signals.handled(), pytest.raises(_signals.Interrupted) as caught:
        _files.write_atomic(files)
    assert caught.value.status == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.png" for i in range(5)]


def test_a_final_block_leaves_the_signals_ignored():
    """``handled(final=True)`` (the command run as a program): once the block ends a signal
    changes nothing, so the status the command decided is the one the process exits with."""
    before = {s: signal.getsignal(s) for s in _signals.SIGNALS}
    try:
        with _signals.handled(final=True):
            pass
        assert {s: signal.getsignal(s) for s in _signals.SIGNALS} == dict.fromkeys(
            _signals.SIGNALS, signal.SIG_IGN
        )
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the test goes on
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_handled_restores_the_handlers_it_replaced():
    before = {s: signal.getsignal(s) for s in _signals.SIGNALS}
    with _signals.handled():
        assert all(signal.getsignal(s) is not before[s] for s in _signals.SIGNALS)
    assert {s: signal.getsignal(s) for s in _signals.SIGNALS} == before
