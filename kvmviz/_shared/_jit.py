"""Compiling with numba, and caching the compiled code where the machine allows it.

``njit(cache=True)`` keeps the compiled machine code on disk, so a second ``import kvmviz``
does not compile the engine again (seconds saved on every notebook start). Numba looks for a
writable place: the package's own ``__pycache__``, then ``~/.cache``. On a read-only install
with a read-only or missing home (a shared lab machine, a container, a Binder image) there is
none, and numba refuses at import: ``RuntimeError: cannot cache function '_mix': no locator
available``. :func:`njit` falls back to a temporary folder (``numba.config.CACHE_DIR``) and
says so once, as a :class:`CacheWarning`; the code is then compiled once per process, exactly
as without a cache. Without numba installed, functions stay plain Python.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings

try:  # pragma: no cover - exercised where numba is installed
    import numba
except ImportError:  # pragma: no cover - exercised where it is not
    numba = None

__all__ = ["CacheWarning", "njit"]


class CacheWarning(UserWarning):
    """Numba cannot keep compiled code on disk here; kvmviz compiles into a temporary folder."""


_fallback: list[str] = []  # the temporary cache folder, once chosen


def _temporary_cache() -> None:
    if _fallback:
        return
    folder = tempfile.mkdtemp(prefix="kvmviz-numba-")
    numba.config.CACHE_DIR = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _fallback.append(folder)
    warnings.warn(
        "numba cannot cache compiled code in the kvmviz package folder or the home folder "
        f"(read-only or missing); compiling into the temporary folder {folder} instead, for "
        "this process only (set NUMBA_CACHE_DIR to a writable folder to keep it)",
        CacheWarning,
        stacklevel=4,
    )


def njit(function=None, **options):
    """``numba.njit(**options)``, with a temporary cache when numba has nowhere to cache.

    Use as ``@njit`` or ``@njit(cache=True)``. Without numba, the function is returned
    unchanged.
    """
    if numba is None:  # pragma: no cover - exercised where numba is not installed
        return function if function is not None else (lambda f: f)

    def decorate(f):
        try:
            return numba.njit(**options)(f)
        except RuntimeError as error:
            if not options.get("cache") or "cannot cache" not in str(error):
                raise
            _temporary_cache()
            return numba.njit(**options)(f)

    return decorate(function) if function is not None else decorate
