"""Opening a file of real data: decompressed as its first bytes say, read in lines of bounded
length.

Every reader of real data (traces, QEMU logs, JSON layouts) opens its file with
:class:`Opened`, so a gzip, xz or bzip2 file is read as its text whatever its name, a zstd
file is refused saying how to read it, a corrupt one is an error naming the file, and a "line"
longer than :data:`MAX_LINE` (a file that is not text) is an error before it fills the memory.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import zlib
from pathlib import Path

from .trace_errors import TraceParseError

__all__ = ["MAX_LINE", "Opened", "bounded_lines"]

# Traces are shared compressed: the format is told by the first bytes (gzip RFC 1952 §2.3.1, the
# xz file format §2.1.1.1, bzip2's "BZh"), whatever the name.
_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"\xfd7zXZ\x00", "xz", lambda f: lzma.LZMAFile(f, mode="rb")),
    (b"BZh", "bzip2", lambda f: bz2.BZ2File(f, mode="rb")),
)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


class Opened:
    """A file opened for reading, decompressed if its first bytes say it is compressed.

    ``stream`` gives the (decompressed) bytes; ``raw`` is the file itself, whose ``tell()`` is
    the share of the file read (progress); ``compression`` is None, "gzip", "xz" or "bzip2".
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = open(path, "rb")  # closed by close()
        self.compression = None
        self.stream = self.raw
        try:
            head = self.raw.peek(8)[:8]
            if head.startswith(_ZSTD_MAGIC):
                raise ValueError(
                    f"{path}: a zstd-compressed file, which kvmviz cannot read; expected text, "
                    "or a gzip, xz or bzip2 file of it: decompress it first (zstd -d)"
                )
            for magic, name, opener in _COMPRESSIONS:
                if head.startswith(magic):
                    self.compression, self.stream = name, opener(self.raw)
                    break
        except BaseException:
            self.raw.close()
            raise

    def close(self) -> None:
        try:
            if self.stream is not self.raw:
                self.stream.close()
        finally:
            self.raw.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lines(self):
        """The (decompressed) lines as bytes, each at most :data:`MAX_LINE` bytes: a longer
        one is a :class:`TraceParseError` naming the line, before it fills the memory."""
        lineno = 0
        while True:
            raw = self.stream.readline(MAX_LINE + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE:
                raise TraceParseError(
                    self.path,
                    lineno,
                    raw[:40].decode("utf-8", "replace"),
                    f"a line of text (at most {MAX_LINE:,} bytes)",
                    got=f"a line longer than {MAX_LINE:,} bytes (not a text file)",
                )
            yield raw

    def head(self, n: int) -> bytes:
        """The first ``n`` (decompressed) bytes, without consuming them."""
        with self.errors():
            return self.stream.peek(n)[:n]

    @contextlib.contextmanager
    def errors(self, lines=None):
        """Turn a decompression error into a ValueError naming the file (``lines()``: the
        lines read so far, for the message)."""
        if self.compression is None:
            yield
            return
        try:
            yield
        except _DECOMPRESS_ERRORS as err:
            where = f" after {lines()} lines" if lines is not None else ""
            raise ValueError(
                f"{self.path}: corrupt {self.compression} data{where} ({err}); expected a "
                f"complete {self.compression}-compressed file: it is damaged or was cut short"
            ) from None


MAX_LINE = 1 << 20
"""Characters in one line of a text trace, at most: the longest real records (a kernel stack
frame, a ``kvm_set_user_memory`` line) are a few hundred. A file with a longer line is not a
text trace (``/dev/zero``, a core dump, a binary with no newline), and reading it line by line
would hold all of it in memory."""


def bounded_lines(text_file, path):
    """The lines of ``text_file``, each at most :data:`MAX_LINE` characters: a longer one is a
    :class:`TraceParseError` naming the line, before it fills the memory."""
    lineno = 0
    while True:
        line = text_file.readline(MAX_LINE + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE:
            raise TraceParseError(
                path,
                lineno,
                line[:40],
                f"a line of text (at most {MAX_LINE:,} characters)",
                got=f"a line longer than {MAX_LINE:,} characters (not a text trace)",
            )
        yield line
