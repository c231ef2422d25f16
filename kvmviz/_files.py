"""Writing files: the one atomic, refuse-to-overwrite writer every export uses.

A figure, an animation, a trace export or a folder of them is rendered in memory first, then
written through temporary files next to their targets and renamed over them, so a failure (a
bad format, a full disk, an interrupt) leaves no partial or half-written file behind; and a
user's existing file is never replaced unless the caller passed ``force=True``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["check_free", "umask", "write_atomic"]


def umask() -> int:
    """The process's file-creation mask, read without changing it.

    ``mkstemp`` and ``mkdtemp`` create private files (0600) and folders (0700); an export is
    for everyone, so it is given ``0o666 & ~umask()`` (``0o777`` for a folder), as ``open``
    would have given it.
    """
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_free(paths: Iterable, *, force: bool) -> list[Path]:
    """``paths`` as Paths, if they may be written: with ``force`` false, raise
    ``FileExistsError`` naming every one that exists (call it before rendering anything)."""
    paths = [Path(p) for p in paths]
    if not force:
        existing = [str(p) for p in paths if p.exists()]
        if existing:
            raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (pass force=True)")
    return paths


def write_atomic(files: Mapping, *, force: bool = False) -> list[Path]:
    """Write every ``path: bytes`` of ``files``, all or none.

    Each payload goes to a temporary file in its target's folder (created if missing); only
    when all are written are they renamed over their targets, so a reader never sees half a
    file, and a failure leaves nothing behind.

    Parameters
    ----------
    files : mapping of str or Path to bytes
    force : bool
        Replace existing files; otherwise raise ``FileExistsError`` before writing anything.

    Returns
    -------
    list of Path
        The files written, in the order given.
    """
    targets = check_free(files, force=force)
    payloads = list(files.values())
    mask = umask()
    temporaries: list[str] = []
    try:
        for target, payload in zip(targets, payloads, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temporaries.append(tmp)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; an export is for everyone
        for tmp, target in zip(temporaries, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return targets
