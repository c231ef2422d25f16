"""Writing files: what every export shares (issue 10 moves the atomic writer here too)."""

from __future__ import annotations

import os

__all__ = ["umask"]


def umask() -> int:
    """The process's file-creation mask, read without changing it.

    ``mkstemp`` and ``mkdtemp`` create private files (0600) and folders (0700); an export is
    for everyone, so it is given ``0o666 & ~umask()`` (``0o777`` for a folder), as ``open``
    would have given it.
    """
    mask = os.umask(0)
    os.umask(mask)
    return mask
