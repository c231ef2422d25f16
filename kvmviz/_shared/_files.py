"""Writing files: the one atomic, never-overwrite writer every output of kvmviz goes through.

Every file is written to a temporary name beside its target (same folder, so same file
system) and moved into place only once complete, so a reader never sees half a file and a
failure (a bad format, a full disk, Ctrl-C, ``kill``) leaves nothing behind. Three shapes:

- :func:`write_atomic`: payloads already in memory (a figure, an animation), all or none;
- :func:`open_atomic`: one file streamed chunk by chunk (a trace export of hundreds of MB);
- :func:`staged_files`: several such files, all or none;
- :func:`staged_folder`: a whole folder of files (``kvmviz figures``), all or none.

"Never overwrite" holds under a race too. Checking that a target is free before the work
(:func:`check_free`, so a user is told before waiting) is not enough: another run may create
the file meanwhile. The move itself therefore refuses to replace anything
(:func:`move_noreplace`: ``renameat2(RENAME_NOREPLACE)``, or a hard link then an unlink), and
when one file of a set turns out to be taken, the files of that set already moved are taken
back out: of two runs writing the same folder, exactly one wins and the other says so. Only
``force=True`` replaces (``os.replace``, atomic per file). The moves run with SIGINT, SIGTERM
and SIGHUP held back (:func:`kvmviz._shared._signals.held`), so a set is never left half moved.

Paths are checked before anything is done (:func:`check_path`): an empty path, a NUL byte, a
component longer than the file system allows.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ._checks import check_bool
from ._signals import held

__all__ = [
    "Staging",
    "check_free",
    "check_path",
    "move_noreplace",
    "open_atomic",
    "staged_files",
    "staged_folder",
    "umask",
    "write_atomic",
]

NAME_MAX = 255
"""Bytes in one path component on Linux's file systems (ext4, xfs, btrfs, tmpfs)."""
PATH_MAX = 4096
"""Bytes in a whole path, as the kernel accepts it in one system call."""
_PREFIX_MAX = 120  # bytes of a target's name kept in its temporary name (which adds ~20)


def umask() -> int:
    """The process's file-creation mask, read without changing it.

    ``mkstemp`` and ``mkdtemp`` create private files (0600) and folders (0700); an export is
    for everyone, so it is given ``0o666 & ~umask()`` (``0o777`` for a folder), as ``open``
    would have given it.
    """
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_path(path, what: str = "path") -> Path:
    """``path`` as a Path, if a file system could hold it; ``ValueError`` naming ``what``.

    Refused: an empty path (it would silently mean the current folder), a NUL byte, a
    component longer than :data:`NAME_MAX` bytes or a path longer than :data:`PATH_MAX`
    bytes (the kernel's ``ENAMETOOLONG``, said before any work instead of after it).
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{what} = {path!r}: expected a path (str or pathlib.Path)")
    text = os.fspath(path)
    if text == "":
        raise ValueError(f"{what} is empty: expected a path (use . for the current folder)")
    if "\0" in text:
        raise ValueError(f"{what} {text!r}: contains a NUL byte, which no path can hold")
    encoded = os.fsencode(text)
    if len(encoded) > PATH_MAX:
        raise ValueError(
            f"{what} {text[:40]}...: {len(encoded):,} bytes long, more than the {PATH_MAX:,} "
            "a path may have"
        )
    for part in encoded.split(b"/"):
        if len(part) > NAME_MAX:
            shown = os.fsdecode(part[:40])
            raise ValueError(
                f"{what}: the name {shown}... is {len(part):,} bytes long, more than the "
                f"{NAME_MAX} a file or folder name may have"
            )
    return Path(text)


def check_free(paths: Iterable, *, force: bool) -> list[Path]:
    """``paths`` as Paths, if they may be written: each passes :func:`check_path`; with
    ``force`` false, raise ``FileExistsError`` naming every one that exists (call it before
    rendering anything: the move at the end checks again, see the module's description)."""
    force = check_bool(force, "force")
    paths = [check_path(p) for p in paths]
    if not force:
        existing = [str(p) for p in paths if p.exists() or p.is_symlink()]
        if existing:
            raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (pass force=True)")
    return paths


# --------------------------------------------------------------------------------------------
# The no-replace move.
# --------------------------------------------------------------------------------------------
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_NOT_SUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}


def _load_renameat2():
    """glibc's ``renameat2``, or None (another libc, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def _taken(target) -> FileExistsError:
    return FileExistsError(
        errno.EEXIST,
        "refusing to overwrite it: it appeared while this run was writing (another run "
        "writing the same place?) (pass force=True)",
        str(target),
    )


def move_noreplace(source, target) -> None:
    """Rename ``source`` to ``target`` unless ``target`` exists, atomically.

    ``renameat2(..., RENAME_NOREPLACE)`` (Linux 3.15, ext4, xfs, btrfs, tmpfs) checks and
    renames in one step. Where it is missing, a regular file is hard-linked to ``target``
    (``link`` fails if the name is taken) and ``source`` unlinked. Only on a file system that
    has neither (FAT) is it an existence check followed by a rename, which a concurrent
    writer could slip between.

    Raises
    ------
    FileExistsError
        ``target`` exists (its ``filename`` is ``target``); ``source`` is left where it was.
    OSError
        Any other failure of the rename.
    """
    src, dst = os.fsencode(source), os.fsencode(target)
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise _taken(target)
        if code not in _NOT_SUPPORTED:
            raise OSError(code, os.strerror(code), os.fsdecode(src), os.fsdecode(dst))
    if not os.path.isdir(src):
        try:
            os.link(src, dst)
        except FileExistsError:
            raise _taken(target) from None
        except OSError as error:
            if error.errno not in _NOT_SUPPORTED:
                raise
        else:
            os.unlink(src)
            return
    if os.path.lexists(dst):  # the last resort: a check, then a rename
        raise _taken(target)
    os.rename(src, dst)


def _commit(pairs: list[tuple[Path, Path]], force: bool) -> None:
    """Move every ``(temporary, target)`` into place, all or none, signals held.

    With ``force`` each target is replaced atomically. Without it a target that was taken
    meanwhile raises ``FileExistsError``, after the files of this set already moved in are
    removed again (they are this run's own: their names were free a moment ago).
    """
    with held():
        if force:
            for temporary, target in pairs:
                os.replace(temporary, target)
            return
        moved: list[Path] = []
        try:
            for temporary, target in pairs:
                move_noreplace(temporary, target)
                moved.append(target)
        except BaseException:
            for target in moved:
                target.unlink(missing_ok=True)
            raise


def _temporary_name(target: Path) -> str:
    """A prefix for ``target``'s temporary file: hidden, and short enough for NAME_MAX."""
    name = os.fsencode(target.name)[:_PREFIX_MAX]
    return "." + os.fsdecode(name).rstrip("\udcff") + "."


def _mkstemp(target: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(dir=target.parent, prefix=_temporary_name(target), suffix=".tmp")
    except OSError as error:
        # mkstemp names a random file of its own: name the folder it could not write into.
        reason = f"{error.strerror or error} (creating a temporary file there)"
        raise OSError(error.errno, reason, str(target.parent)) from error


def make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; return those created, innermost first
    (for :func:`remove_empty` when the run does not complete)."""
    missing = []
    for path in (folder, *folder.parents):
        if path.is_dir():
            break
        if path.exists():  # a regular file: mkdir would say "File exists", which misleads
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
        missing.append(path)
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created (innermost first), if they are still empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (something else wrote there) or already gone: leave it


# --------------------------------------------------------------------------------------------
# The three writers.
# --------------------------------------------------------------------------------------------
def write_atomic(files: Mapping, *, force: bool = False) -> list[Path]:
    """Write every ``path: bytes`` of ``files``, all or none.

    Each payload goes to a temporary file in its target's folder (created if missing); only
    when all are written are they moved into place (:func:`move_noreplace`, or replacing
    with ``force``), so a reader never sees half a file, and a failure leaves nothing behind.

    Parameters
    ----------
    files : mapping of str or Path to bytes
    force : bool
        Replace existing files; otherwise raise ``FileExistsError`` before writing anything,
        and again at the move if one appeared meanwhile (then nothing is written).

    Returns
    -------
    list of Path
        The files written, in the order given.
    """
    targets = check_free(files, force=force)
    with staged_files(targets, force=force) as temporaries:
        for tmp, payload in zip(temporaries, files.values(), strict=True):
            tmp.write_bytes(payload)
    return targets


@contextmanager
def open_atomic(path, *, force: bool = False) -> Iterator:
    """A binary file to stream into, that appears at ``path`` only once complete.

    Use as ``with open_atomic(path) as handle: handle.write(...)``. The file is a temporary
    one beside ``path`` until the block ends without an exception; it is then moved into place
    (never over an existing file unless ``force``). An exception, Ctrl-C or a handled signal
    inside the block removes it: nothing half-written is ever left.

    Parameters
    ----------
    path : str or Path
    force : bool
        Replace an existing file; otherwise ``FileExistsError`` before the block runs, and at
        the end if a file appeared there meanwhile.

    Yields
    ------
    file object
        Open for binary writing.
    """
    (target,) = check_free([path], force=force)
    created = make_parents(target.parent)
    complete = False
    tmp = None
    try:
        fd, tmp = _mkstemp(target)
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~umask())
        _commit([(Path(tmp), target)], force)
        complete = True
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
        if not complete:
            remove_empty(created)


@contextmanager
def staged_files(paths, *, force: bool = False) -> Iterator[list[Path]]:
    """Temporary files beside each of ``paths``, moved into place together, all or none.

    For files written one after another by a streaming writer (trace exports of hundreds of
    MB each): each is written to its temporary path, then, when the block ends without an
    exception, all are moved into place (:func:`move_noreplace`, or replacing with
    ``force``). On any exception, Ctrl-C or handled signal every temporary file is removed.

    Parameters
    ----------
    paths : iterable of str or Path
    force : bool
        Replace existing files; otherwise ``FileExistsError`` before the block runs, and at
        the end (nothing moved) if one appeared meanwhile.

    Yields
    ------
    list of Path
        The temporary path of each target, in order; each exists, empty, for the writer to
        open.
    """
    targets = check_free(paths, force=force)
    mask = umask()
    created: list[Path] = []
    temporaries: list[Path] = []
    complete = False
    try:
        for target in targets:
            created += make_parents(target.parent)
            fd, tmp = _mkstemp(target)
            os.close(fd)
            temporaries.append(Path(tmp))
        yield list(temporaries)
        for tmp in temporaries:
            os.chmod(tmp, 0o666 & ~mask)
        _commit(list(zip(temporaries, targets, strict=True)), force)
        complete = True
    finally:
        for tmp in temporaries:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        if not complete:
            remove_empty(created)


class Staging:
    """A hidden folder beside an output folder, where a set of files is written first.

    Write each file under :attr:`path` (any writer: they are private until the set is
    moved) and :meth:`add` it; :func:`staged_folder` moves the set into place.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: list[Path] = []

    def add(self, *paths) -> list[Path]:
        """Register files written under :attr:`path`; returns them."""
        for p in paths:
            Path(p).relative_to(self.path)  # ValueError for a file outside the stage
            self.files.append(Path(p))
        return [Path(p) for p in paths]

    def write(self, relative, payload: bytes) -> Path:
        """Write ``payload`` to ``relative`` under :attr:`path` and :meth:`add` it."""
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(payload)
        return self.add(path)[0]


@contextmanager
def staged_folder(out, *, force: bool = False) -> Iterator[Staging]:
    """Write a set of files into ``out``, all or none.

    Yields a :class:`Staging` in a hidden temporary folder beside ``out`` (same file system).
    When the block ends without an exception the set is moved into place: the whole folder in
    one no-replace rename when ``out`` does not exist, else file by file (no-replace unless
    ``force``, and all or none). On any exception, Ctrl-C or handled signal the temporary
    folder is removed, and so are the parents this call created: ``out`` is as it was.

    Parameters
    ----------
    out : str or Path
    force : bool
        Replace files of ``out`` the set also has (the others are left alone).

    Yields
    ------
    Staging
        After the block, ``staging.files`` are the files' final paths.
    """
    force = check_bool(force, "force")
    out = check_path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(out))
    created = make_parents(out.parent)  # removed again if the run does not complete
    try:
        name = os.fsdecode(os.fsencode(out.name)[:_PREFIX_MAX]).rstrip("\udcff")
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{name}.partial-"))
    except OSError as error:
        remove_empty(created)
        reason = f"{error.strerror or error} (creating a temporary folder there)"
        raise OSError(error.errno, reason, str(out.parent)) from error
    staging = Staging(stage)
    complete = False
    try:
        yield staging
        relative = [p.relative_to(stage) for p in staging.files]
        stage.chmod(0o777 & ~umask())  # mkdtemp makes 0700; the files are for everyone
        with held():
            try:
                move_noreplace(stage, out)
            except FileExistsError:  # out exists (or appeared): move file by file
                pairs = [(stage / rel, out / rel) for rel in relative]
                for _, target in pairs:
                    target.parent.mkdir(parents=True, exist_ok=True)
                _commit(pairs, force)
        staging.files = [out / rel for rel in relative]
        complete = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not complete:
            remove_empty(created)
