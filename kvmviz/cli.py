"""``kvmviz`` on the command line: ``python -m kvmviz simulate``, ``figures``, ``replay``, ``quiz``.

Every run echoes its parameters, so any screenshot of the output can be reproduced.

A user's mistake never ends in a traceback: a bad option, a file that cannot be read or
written, a run too big for memory, each prints one line on stderr naming the option, file or
parameter and what was expected, and exits with status 2. The process boundary is part of the
contract too:

- Ctrl-C, ``kill`` (SIGTERM) and a hung-up terminal (SIGHUP) stop the command the same way,
  from the first instant (the handlers are installed before numpy and numba load): temporary
  files and folders are removed, one line says so, the status is 130, 143 or 129
  (:mod:`kvmviz._shared._signals`).
- A reader that goes away (``kvmviz simulate | head -1``) ends the report quietly, status 141;
  files the command was asked to write are completed first. A full disk or ``/dev/full`` under
  standard output is one line; an encoding without "µ" gets "us" (:mod:`kvmviz._shared._streams`).
- Files are written whole or not at all, and never over an existing file without ``--force``,
  even when two runs race for the same folder (:mod:`kvmviz._shared._files`).

Only a bug in kvmviz itself still shows a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from pathlib import Path

from . import __version__
from ._shared._prose import binary_size  # plain Python: loads nothing slow
from ._shared._signals import Interrupted, handled
from ._shared._streams import PIPE_STATUS, OutputError, PipeClosed, guarded

__all__ = ["main"]

# The model (numpy, numba, pandas) is imported inside main(), after the signal handlers.

# Scenario fields the simulate options set, to name the option in Scenario's own errors.
_OPTION_OF_FIELD = {
    "n_vcpus": "--vcpus",
    "duration_us": "--duration-ms",
    "notifier_rate_hz": "--rate",
    "spurious_share": "--spurious",
}


# --------------------------------------------------------------------------------------------
# Argument types: each refuses what the option cannot mean in one sentence (argparse prefixes
# "argument --option:").
# --------------------------------------------------------------------------------------------
def _seed(text: str) -> int:
    """A seed: a non-negative integer, written in decimal (``1.7`` and ``-1`` are refused)."""
    from ._shared._checks import check_seed

    try:
        return check_seed(int(text, 10))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a non-negative integer") from None


def _integer_at_least(minimum: int):
    """An integer ``>= minimum``, in decimal (``1e3`` is refused: it reads as a float)."""

    def count(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {minimum}")
        return value

    count.__name__ = "integer"
    return count


def _number(lo: float, hi: float = math.inf, *, above: bool = False):
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` when ``above``); nan and inf refused."""
    expected = f"a finite number {'>' if above else '>='} {lo:g}"
    if hi < math.inf:
        expected = f"a finite number between {lo:g} and {hi:g}"

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and lo <= value <= hi and (value > lo or not above)):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    number.__name__ = "number"
    return number


def _window(text: str) -> tuple[float, float]:
    """``START:END`` in ms, two finite numbers with 0 <= START < END; returned in µs."""
    start, sep, end = text.partition(":")
    try:
        lo, hi = float(start), float(end)
    except ValueError:
        lo = hi = math.nan
    if not (sep and math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected START:END, milliseconds with 0 <= START < END (say 2:5)"
        )
    return lo * 1000, hi * 1000


def _kernels(text: str) -> tuple[str, ...]:
    """Releases, comma-separated, each once: any of v5.12 to v6.18, spelled ``v6.8`` or ``6.8``
    (a ``uname -r`` too; :func:`kvmviz.kernels.resolve`), returned by their canonical names."""
    from .inputs.kernels import RELEASES, resolve

    given = [k.strip() for k in text.split(",") if k.strip()]
    names, unknown = [], []
    for kernel in given:
        try:
            names.append(resolve(kernel))
        except ValueError:
            unknown.append(kernel)
    if unknown or not given or len(set(names)) != len(names):
        if unknown:
            are = "is not a release" if len(unknown) == 1 else "are not releases"
            why = f"{', '.join(unknown)} {are} kvmviz models; "
        else:
            why = "each release once; " if given else ""
        raise argparse.ArgumentTypeError(
            f"{text!r}: {why}expected releases from {RELEASES[0]} to {RELEASES[-1]}, "
            "comma-separated (say 6.8,6.18)"
        )
    return tuple(names)


def _kernels_option(parser, what: str) -> None:
    """``--kernels``, the releases a command runs (the 2021 story's three by default)."""
    parser.add_argument(
        "--kernels",
        type=_kernels,
        default=None,
        metavar="K[,K]",
        help=f"{what}: releases from v5.12 to v6.18, spelled v6.8 or 6.8, comma-separated, in "
        "the order given (default: v5.12,v5.13,v5.15; the milestones of today's kernel: "
        "6.7,6.8,6.18)",
    )


def _width(text: str) -> str | float:
    """A figure width: a name of ``gallery.WIDTHS`` or inches from 3 to 30."""
    if text in _WIDTHS:
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 3 <= value <= 30):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected {' or '.join(_WIDTHS)}, or inches from 3 to 30"
        )
    return value


_WIDTHS = ("column", "wide")  # gallery.WIDTHS, without loading matplotlib for --help


class _Parser(argparse.ArgumentParser):
    """argparse, whose errors are one line (exit status 2) instead of usage plus a line."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after each option that has a default worth showing."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.required:
            return action.help
        if action.default is argparse.SUPPRESS or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _progress_option(parser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )


def _path(option: str):
    """A path an option writes to: not empty, no NUL byte, no name too long for a file
    system (:func:`kvmviz._shared._files.check_path`)."""

    def path(text: str) -> str:
        from ._shared._files import check_path

        try:
            check_path(text, option)
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                str(error).removeprefix(f"{option} ").removeprefix(f"{option}: ")
            ) from None
        return text

    path.__name__ = "path"
    return path


def _trace_options(parser, what: str) -> None:
    parser.add_argument(
        "--trace",
        type=_path("--trace"),
        metavar="DIR",
        help=f"also write {what} as a trace Perfetto opens (https://ui.perfetto.dev), one file "
        "per kernel, into DIR (created if needed)",
    )
    parser.add_argument(
        "--trace-format",
        default=None,
        metavar="FMT[,FMT]",
        help="comma-separated trace formats: pftrace (Perfetto protobuf, with flows from a "
        "waiting callback to the faults queued behind it), json (Chrome JSON, also read by "
        "Trace Compass) (default: pftrace)",
    )
    parser.add_argument(
        "--trace-window",
        type=_window,
        metavar="START:END",
        help="write only the faults and callbacks overlapping this window, milliseconds of "
        "simulated time (default the whole run; a trace is ~230 bytes per fault attempt)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace existing trace files (without it they are refused before any work)",
    )


def _parser() -> argparse.ArgumentParser:
    """The ``kvmviz`` parser: one subcommand per builder below, in the order of ``--help``."""
    parser = _Parser(
        prog="kvmviz",
        description="KVM mmu_lock vs MMU notifiers, before and after Linux 8931a454ae.",
        epilog="Errors are one line on stderr and exit status 2 (130 when interrupted).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"kvmviz {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_simulate_command, _figures_command, _replay_command, _quiz_command):
        add_command(sub)
    return parser


def _command(sub, name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
    """A subcommand whose description is its summary as a sentence, then ``details``."""
    return sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + "." + (f" {details}" if details else ""),
        formatter_class=_Formatter,
    )


# Options several commands share; the help says what each command does with them.
def _seed_option(parser, what: str) -> None:
    parser.add_argument("-s", "--seed", type=_seed, default=0, help=f"{what} (an integer >= 0)")


def _policy_option(parser, text: str, default: str | None = "qrwlock") -> None:
    from .model.rwlock import POLICIES

    parser.add_argument("--policy", choices=POLICIES, default=default, help=text)


def _max_records_option(parser, text: str) -> None:
    from .model.engine import MAX_RECORDS

    parser.add_argument(
        "--max-records", type=_integer_at_least(1), default=MAX_RECORDS, metavar="N", help=text
    )


def _notification_options(parser, rate_default: str, spurious_default: str) -> None:
    """``--rate`` and ``--spurious``, which replace the setup's values (named in the help)."""
    parser.add_argument(
        "--rate",
        type=_number(0),
        default=None,
        metavar="HZ",
        help=f"MMU notification events per second (default: {rate_default})",
    )
    parser.add_argument(
        "--spurious",
        type=_number(0, 1),
        default=None,
        metavar="SHARE",
        help="share of notifications that miss every memslot, 0 to 1 "
        f"(default: {spurious_default})",
    )


def _simulate_command(sub) -> None:
    from .inputs.presets import SETUPS
    from .inputs.scenario import Scenario

    sim = _command(
        sub,
        "simulate",
        "compare v5.12 / v5.13 / v5.15 (or the releases --kernels names) on one scenario",
        "Prints one row per kernel: the readers' stall beside the writers' wait.",
    )
    sim.add_argument(
        "--vcpus",
        type=_integer_at_least(1),
        default=Scenario.n_vcpus,
        metavar="N",
        help="vCPUs in the VM (9 in 10 of them fault)",
    )
    sim.add_argument(
        "--duration-ms",
        type=_number(0, above=True),
        default=Scenario.duration_us / 1000,
        metavar="MS",
        help="simulated time, milliseconds",
    )
    sim.add_argument(
        "--setup",
        choices=tuple(SETUPS),
        default="static",
        help="the VM of 8931a454ae's message: static (every notification spurious, "
        "kv.presets.static_setup) or volatile (most on guest memory: KSM, migration, aging)",
    )
    _notification_options(
        sim, "the setup's, 2000 static, 5000 volatile", "the setup's, 1 static, 0.4 volatile"
    )
    _kernels_option(sim, "the kernels to compare")
    _policy_option(sim, "the lock mmu_lock is (spinlock: faults take it for write too)")
    sim.add_argument(
        "--tdp-mmu",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="faults go through the TDP MMU and read-lock mmu_lock (kvm.tdp_mmu=1); with "
        "--no-tdp-mmu they write-lock it, as on a stock v5.12/v5.13 host",
    )
    _seed_option(sim, "seeds the vCPU workload and the notification stream")
    _max_records_option(
        sim,
        "refuse, before any work, a run whose tables would exceed N rows (fault attempts "
        "+ notifier callbacks, ~260 bytes each); raise it to go ahead with a bigger run",
    )
    _trace_options(sim, "each kernel's run")
    _progress_option(sim)


def _figures_command(sub) -> None:
    figs = _command(
        sub,
        "figures",
        "render every figure of the notebooks and the README into a folder",
        "The whole set is rendered into a temporary folder beside DIR (same file system) and "
        "moved into place only once complete: a run interrupted or failing halfway leaves DIR "
        "as it was and no partial set behind.",
    )
    figs.add_argument(
        "--out",
        type=_path("--out"),
        required=True,
        metavar="DIR",
        help="output folder, created if needed (required)",
    )
    figs.add_argument(
        "--format",
        default="svg,png",
        metavar="FMT[,FMT]",
        help="comma-separated file formats among svg, png, pdf",
    )
    _figure_look_options(figs)
    _figure_vm_options(figs)
    figs.add_argument(
        "--transparent",
        action="store_true",
        help="leave the background out of the files (for a page of another colour)",
    )
    figs.add_argument(
        "--no-title",
        action="store_true",
        help="leave each figure's caption out of it and write it beside it as NAME.txt (the "
        "image's alt text)",
    )
    _seed_option(figs, "seeds every simulation; one seed gives byte-identical SVGs")
    figs.add_argument(
        "--force",
        action="store_true",
        help="replace existing files; the old ones stay until the whole new set is ready, then "
        "each is replaced atomically (without --force, any existing file is refused before "
        "any work)",
    )
    figs.add_argument(
        "--no-animations",
        action="store_true",
        help="skip the animations (HTML and GIF), which take most of the time",
    )


def _figure_look_options(figs) -> None:
    """How ``figures`` draws: the text size, the ink, the width."""
    from .views import theme

    figs.add_argument(
        "--context",
        choices=theme.CONTEXTS,
        default="paper",
        help="the size of the text (never of the figure): a page, a notebook, a projector, a "
        "poster",
    )
    figs.add_argument(
        "--style",
        choices=theme.STYLES,
        default="light",
        help="dark ink on a white page, or light ink on a near-black one",
    )
    figs.add_argument(
        "--width",
        type=_width,
        default=None,
        metavar="column|wide|INCHES",
        help="every figure's width: column (6.5 in, a blog's text column), wide (10 in) or "
        "inches from 3 to 30; the figure is laid out for it, its height follows (default: "
        "each figure's own, 10 in or 6.4 in)",
    )


def _figure_vm_options(figs) -> None:
    """The VM ``figures`` simulates and the kernels it compares (each figure's own by default)."""
    from .inputs.presets import SETUPS

    figs.add_argument(
        "--setup",
        choices=tuple(SETUPS),
        default=None,
        help="the VM every figure simulates: the static or the volatile setup of "
        "kvmviz.presets (default: each figure's own; the figures of both setups take the "
        "VM's size and timings and apply each setup to it; the animations keep theirs)",
    )
    figs.add_argument(
        "--vcpus",
        type=_integer_at_least(1),
        default=None,
        metavar="N",
        help="vCPUs of that VM (default: the setup's, 416)",
    )
    _notification_options(figs, "the setup's", "the setup's")
    figs.add_argument(
        "--kernels",
        type=_kernels,
        default=None,
        metavar="K[,K]",
        help="the kernels every figure compares: releases from v5.12 to v6.18, spelled v6.8 "
        "or 6.8, in the order given (default: each figure's own; the timelines draw the first)",
    )


def _replay_command(sub) -> None:
    rep = _command(
        sub,
        "replay",
        "what a recorded notifier trace would cost on v5.12 / v5.13 / v5.15, or on the releases "
        "--kernels names",
        "The recorded notifications drive the modelled vCPUs; prints the per-kernel table and "
        "a perf-lock-contention table per kernel.",
    )
    rep.add_argument(
        "trace_file", metavar="TRACE", help="tracefs `trace` file or `trace-cmd report` output"
    )
    rep.add_argument(
        "--layout",
        required=True,
        metavar="FILE",
        help="memslots: a QEMU kvm_set_user_memory log, or a JSON layout (.json) (required)",
    )
    rep.add_argument(
        "--vcpus",
        type=_integer_at_least(1),
        default=64,
        metavar="N",
        help="modelled faulting vCPUs",
    )
    _kernels_option(rep, "the kernels to replay the trace on")
    _policy_option(rep, "the lock mmu_lock is")
    _seed_option(rep, "seeds the vCPU workload")
    rep.add_argument(
        "--lenient",
        action="store_true",
        help="skip (and count) malformed trace lines instead of stopping at the first",
    )
    _max_records_option(
        rep,
        "refuse, before any work, a replay whose tables would exceed N rows per kernel "
        "(fault attempts + notifier callbacks, ~260 bytes each); raise it to go ahead",
    )
    _trace_options(rep, "the replayed notifications and the modelled vCPUs")
    _progress_option(rep)


def _quiz_command(sub) -> None:
    from . import exercises

    quiz = _command(sub, "quiz", "print a seeded exercise; -c reveals the answer")
    quiz.add_argument(
        "kind",
        choices=sorted(exercises.KINDS),
        nargs="?",
        default="takes-lock",
        help="which exercise",
    )
    _seed_option(quiz, "picks the problem")
    quiz.add_argument("-c", "--compute", action="store_true", help="show the answer")
    _policy_option(quiz, "the lock of grant-order and reader-wait (qrwlock)", default=None)


# --------------------------------------------------------------------------------------------
# Entry point and the one-line errors.
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kvmviz`` script.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``kvmviz``; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success (``--help`` and ``--version`` included), 2 for a user's
        mistake or an output that could not be written (one line on stderr says which), 141
        when the reader of standard output went away, 128 + the signal's number when
        interrupted (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
    """
    # First: a Ctrl-C while numpy loads is one line. Run as a program (no argv given), the
    # handlers stay to the end: a signal after the work is done leaves the status as it is.
    with handled(final=argv is None), _one_line_warnings():
        try:
            with guarded() as (out, _err):
                status = _run(argv)
                if out.pipe_closed and status == 0:
                    status = PIPE_STATUS  # the files are complete; the report was cut
            return status
        except KeyboardInterrupt as stop:
            return _stopped("kvmviz", stop, "")
        except PipeClosed:
            return PIPE_STATUS
        except OutputError as error:
            return _fail("kvmviz", f"cannot write to {error.filename}: {error.strerror}")


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings (a numba cache fallback, say) as ``kvmviz: warning: ...``, one line each."""
    saved = warnings.formatwarning
    warnings.formatwarning = lambda message, *_args, **_kw: (
        f"kvmviz: warning: {_one_line(message)}\n"
    )
    try:
        yield
    finally:
        warnings.formatwarning = saved


def _run(argv: list[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help, --version or an argparse error (one line)
        return done.code if isinstance(done.code, int) else 2
    return _COMMANDS[args.command](args)


def _keep_going() -> None:
    """This command writes files: a reader that goes away must not stop them half-way."""
    if hasattr(sys.stdout, "keep_going"):
        sys.stdout.keep_going = True


def _stopped(prog: str, stop: KeyboardInterrupt, what: str) -> int:
    """The one line of a command stopped by Ctrl-C (``interrupted``, 130) or a signal
    (``interrupted (SIGTERM)``, 143), saying what was left (``what``)."""
    signalled = isinstance(stop, Interrupted) and stop.status != 130
    name = f" ({stop.name})" if signalled else ""
    status = stop.status if signalled else 130
    return _fail(prog, f"interrupted{name}{'; ' + what if what else ''}", status=status)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _fail(prog: str, message: str, *, status: int = 2) -> int:
    """Print ``prog: message`` as one line on stderr; return ``status``."""
    if sys.stderr is None:  # closed before Python started (2>&-): the status says it
        return status
    try:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")  # clear a progress line left half-drawn
        print(f"{prog}: {_one_line(message)}", file=sys.stderr)
    except (OSError, ValueError):
        pass  # stderr itself is gone: the status still says it
    return status


def _os_error(error: OSError) -> str:
    """``path: reason`` for an OSError (its ``str`` starts with ``[Errno n]``)."""
    if error.filename is not None and error.strerror:
        where = str(error.filename)
        if error.filename2 is not None:
            where += f" -> {error.filename2}"
        return f"{where}: {error.strerror}"
    return str(error) or type(error).__name__


def _reporter(args, name: str, describe):
    from ._shared._progress import reporter

    show = sys.stderr.isatty() if args.progress is None else args.progress
    return reporter(True if show else None, name, describe, "done, total")


# --------------------------------------------------------------------------------------------
# What a run will cost, said before it starts.
# --------------------------------------------------------------------------------------------
def _memory_available() -> int | None:
    """Bytes of memory this process may still use, or None if nothing says.

    The least of what the machine has available (``MemAvailable``), what the container's
    cgroup allows beyond what it uses (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) and
    what ``ulimit -v`` leaves of the address space: a run refused by none of them may still
    be killed, but one refused by any would have been.
    """
    import os
    import resource

    limits = []

    def read(path: str) -> str | None:
        try:
            with open(path, encoding="ascii") as handle:
                return handle.read()
        except OSError:
            return None

    meminfo = read("/proc/meminfo") or ""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            limits.append(int(line.split()[1]) * 1024)
    if not limits:
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = read(limit_file), read(usage_file)
        if limit and usage and limit.strip().isdigit() and usage.strip().isdigit():
            if int(limit) < 2**60:  # v1 writes "no limit" as a huge number
                limits.append(max(int(limit) - int(usage), 0))
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        status = read("/proc/self/status") or ""
        size = next(
            (
                int(line.split()[1]) * 1024
                for line in status.splitlines()
                if line.startswith("VmSize:")
            ),
            0,
        )
        limits.append(max(soft - size, 0))
    return min(limits) if limits else None


def _check_cost(
    work, *, runs: int, option: str, limit: int, lower: str, extra: int = 0
) -> str | None:
    """Why a simulation of ``work`` (``runs`` of them kept in memory) may not start, or None.

    Two limits: ``limit`` rows per run (the option ``option``, which a user may raise), and
    the memory this machine has available now: the tables of every run are held at once
    (the per-kernel table compares them), so a run that fits the option but not the machine
    is refused too, and a suggested ``option`` value is offered only when it would fit.
    ``extra`` is memory needed besides the tables (a trace export's, :func:`_export_memory`).
    """
    available = _memory_available()
    needed = runs * work.bytes + extra
    fits = available is None or needed <= 0.8 * available
    if work.records > limit:
        if fits and work.bytes < 2**50:
            go_ahead = f", or add {option} {work.records} to go ahead"
        elif available is not None:
            go_ahead = (
                f" (raising {option} would not help: the {runs} runs' tables would take "
                f"~{binary_size(needed)}, more than the {binary_size(available)} this machine has "
                "available)"
            )
        else:
            go_ahead = ""
        return (
            f"each kernel's run would simulate {work}, more than {option} {limit:,}: "
            f"{lower}{go_ahead}"
        )
    if not fits:
        return (
            f"the {runs} kernels' runs would need ~{binary_size(needed)} of memory ({work} each), "
            f"more than the {binary_size(available)} this machine has available: {lower}"
        )
    return None


# --------------------------------------------------------------------------------------------
# Trace files: --trace, --trace-format, --trace-window.
# --------------------------------------------------------------------------------------------
def _trace_formats(args) -> list[str]:
    from .views.export import TRACE_FORMATS

    text = "pftrace" if args.trace_format is None else args.trace_format
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    known = [f.lstrip(".") for f in TRACE_FORMATS]
    unknown = [f for f in formats if f not in known]
    if unknown or not formats or len(set(formats)) != len(formats):
        why = f"unknown format(s) {', '.join(unknown)}" if unknown else "each format once"
        raise ValueError(
            f"--trace-format {text!r}: {why if formats else 'no format'}; expected some of "
            f"{', '.join(known)}, comma-separated"
        )
    return formats


def _trace_targets(args, stem: str, kernels) -> tuple[list[Path], str]:
    """The trace files ``--trace`` asks for (one per kernel and format) and the options to
    echo. ``ValueError`` for an unknown format, a trace option without ``--trace`` or a folder
    that cannot be written, ``FileExistsError`` for an existing file without ``--force``.
    Nothing is written here."""
    from ._shared._files import check_free

    if args.trace is None:
        given = [
            option
            for option, value in (
                ("--trace-format", args.trace_format),
                ("--trace-window", args.trace_window),
                ("--force", args.force or None),
            )
            if value is not None
        ]
        if given:
            they, apply, them = ("they", "apply", "them") if given[1:] else ("it", "applies", "it")
            raise ValueError(
                f"{' and '.join(given)} given without --trace: {they} {apply} only to the trace "
                f"files --trace DIR writes; add --trace DIR, or leave {them} out"
            )
        return [], ""
    formats = _trace_formats(args)
    out = Path(args.trace)
    problem = _not_a_folder(out, "--trace")
    if problem:
        raise ValueError(problem)
    targets = [out / f"{stem}-{kernel}.{fmt}" for kernel in kernels for fmt in formats]
    try:
        check_free(targets, force=args.force)
    except FileExistsError as error:
        raise FileExistsError(str(error).replace("pass force=True", "add --force")) from None
    echo = f" --trace {args.trace} --trace-format {','.join(formats)}"
    if args.trace_window is not None:
        lo, hi = args.trace_window
        echo += f" --trace-window {lo / 1000:g}:{hi / 1000:g}"
    return targets, echo + (" --force" if args.force else "")


def _not_a_folder(out: Path, option: str) -> str | None:
    """Why ``out`` cannot be the folder ``option`` writes into, or None (absent is fine)."""
    if out.is_symlink() and not out.exists():
        return (
            f"{option} {out}: a symbolic link to {out.readlink()}, which does not exist; "
            "expected a folder (or a link to one)"
        )
    if out.exists() and not out.is_dir():
        return f"{option} {out}: exists and is not a folder; expected a folder"
    return None


def _writable_folder(out: Path, option: str, needed: int) -> str | None:
    """Why ``out`` (a folder, created if missing) cannot take ``needed`` bytes, or None:
    the nearest existing ancestor must be a folder this process may write into, on a file
    system with room for the files (checked before any work, so a long run is not wasted)."""
    import os
    import shutil

    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{option} {out}: {existing} is not a folder; expected a folder to write into"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{option} {out}: {existing} cannot be written (permission denied or read-only)"
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return None
    if needed > free:
        return (
            f"{option} {out}: the files would take ~{binary_size(needed)}, and the file system of "
            f"{existing} has {binary_size(free)} free; free some space, or add --trace-window to "
            "write a stretch of the run"
        )
    return None


def _export_memory(work, targets) -> int:
    """Memory the trace export needs besides the runs (one file at a time), or 0."""
    from .views import export

    return export.memory(work.attempts, work.callbacks) if targets else 0


def _trace_bytes(work, formats) -> int:
    """Bytes of one kernel's trace files, all ``formats``, estimated from the run's work."""
    from .views import export

    return sum(export.estimate(work.attempts, work.callbacks, f".{fmt}") for fmt in formats)


def _check_runs(args, work, targets, kernels, *, end_us: float, lower: str) -> str | None:
    """Everything checked before a command simulates one run per kernel of ``kernels``: the
    cost of the runs and of their traces against ``--max-records`` and the machine's memory,
    the trace window against the run, and the trace folder against the disk. The refusal, or
    None; with trace files to write, the command keeps going when its reader leaves (the files
    come first)."""
    refusal = _check_cost(
        work,
        runs=len(kernels),
        option="--max-records",
        limit=args.max_records,
        lower=lower,
        extra=_export_memory(work, targets),
    )
    refusal = refusal or _check_window(args, end_us)
    if targets and refusal is None:
        needed = len(kernels) * _trace_bytes(work, _trace_formats(args))
        refusal = _writable_folder(Path(args.trace), "--trace", needed)
    if targets and refusal is None:
        _keep_going()
    return refusal


def _check_window(args, end_us: float) -> str | None:
    if args.trace_window is not None and args.trace_window[0] >= end_us:
        lo, hi = args.trace_window
        return (
            f"--trace-window {lo / 1000:g}:{hi / 1000:g}: starts after the run, which ends at "
            f"{end_us / 1000:g} ms; expected a window inside 0:{end_us / 1000:g}"
        )
    return None


def _write_traces(prog: str, targets: list[Path], runs: dict, args) -> int:
    """Write each kernel's run to its targets, all or none, one file at a time (each streamed
    to a temporary file: memory does not grow with kernels or formats); print each path."""
    from ._shared._files import staged_files
    from .views import export

    if not targets:
        return 0
    writing = targets[0]
    try:
        with staged_files(targets, force=args.force) as temporaries:
            for writing, temporary in zip(targets, temporaries, strict=True):
                kernel = writing.stem.rsplit("-", 1)[1]
                with open(temporary, "wb") as handle:
                    export.write(runs[kernel], handle, writing.suffix, window=args.trace_window)
    except ValueError as error:
        return _fail(prog, f"--trace-window: {error}; no trace was written")
    except OSError as error:
        if error.filename is None and error.errno is not None:  # a failed write (a full disk,
            # ulimit -f): name the file. A refusal of ours (errno None) names its files already.
            error = OSError(error.errno, error.strerror, str(writing))
        message = _os_error(error).replace("pass force=True", "add --force")
        return _fail(prog, f"cannot write --trace: {message}; no trace was written")
    except KeyboardInterrupt as stop:
        return _stopped(prog, stop, "no trace was written")
    for path in targets:
        print(f"# trace: {path}")
    return 0


# --------------------------------------------------------------------------------------------
# The commands.
# --------------------------------------------------------------------------------------------
def _scenario_error(error: ValueError) -> str:
    field = str(error).partition(" ")[0].removeprefix("Scenario.")
    option = _OPTION_OF_FIELD.get(field)
    return f"{option}: {error}" if option else str(error)


def _simulate(args) -> int:
    from .inputs.kernels import KERNELS_2021
    from .inputs.presets import SETUPS
    from .model.engine import MAX_FAULTING_VCPUS, MAX_RECORDS, TooMuchWork, estimate
    from .stats import experiments, metrics
    from .stats.metrics import KERNEL_TABLE_COLUMNS

    prog = "kvmviz simulate"
    try:
        changes = {"notifier_rate_hz": args.rate, "spurious_share": args.spurious}
        scenario = SETUPS[args.setup](
            n_vcpus=args.vcpus,
            duration_us=args.duration_ms * 1000,
            tdp_mmu=args.tdp_mmu,
            **{field: value for field, value in changes.items() if value is not None},
        )
    except ValueError as error:
        return _fail(prog, _scenario_error(error))
    if scenario.n_faulting >= MAX_FAULTING_VCPUS:
        return _fail(
            prog,
            f"--vcpus {args.vcpus:,}: the model numbers at most {MAX_FAULTING_VCPUS - 1:,} "
            "faulting vCPUs (9 in 10 of --vcpus); expected fewer vCPUs",
        )
    kernels = KERNELS_2021 if args.kernels is None else args.kernels
    try:
        targets, echo_trace = _trace_targets(args, "simulate", kernels)
    except (ValueError, FileExistsError) as error:
        return _fail(prog, str(error))
    refusal = _check_runs(
        args,
        estimate(scenario),
        targets,
        kernels,
        end_us=scenario.duration_us,
        lower="shorten --duration-ms, lower --vcpus or --rate",
    )
    if refusal:
        return _fail(prog, refusal)
    echo_max = f" --max-records {args.max_records}" if args.max_records != MAX_RECORDS else ""
    echo_kernels = "" if args.kernels is None else f" --kernels {','.join(kernels)}"
    print(
        f"# kvmviz simulate --setup {args.setup} --vcpus {args.vcpus} "
        f"--duration-ms {args.duration_ms:g} --rate {scenario.notifier_rate_hz:g} "
        f"--spurious {scenario.spurious_share:g}{echo_kernels} --policy {args.policy} "
        f"{'' if args.tdp_mmu else '--no-tdp-mmu '}-s {args.seed}{echo_max}{echo_trace}"
    )
    n = len(kernels)

    def describe(done: int, total: int) -> str:
        return f"{done} / {total} kernels" + (f", running {kernels[done]}" if done < n else "")

    report = _reporter(args, prog, describe)
    try:
        runs = experiments.kernel_runs(
            scenario,
            kernels=kernels,
            policy=args.policy,
            seed=args.seed,
            progress=report,
            max_records=args.max_records,
        )
    except TooMuchWork as error:  # faults retried far more than estimated
        message = str(error).replace("max_records=", "--max-records ")
        return _fail(prog, message.replace("a larger max_records", "a larger --max-records"))
    print(metrics.kernel_table(runs)[list(KERNEL_TABLE_COLUMNS)].round(3).to_string())
    return _write_traces(prog, targets, runs, args)


def _figures_vm(args):
    """The VM ``--setup``, ``--vcpus``, ``--rate`` and ``--spurious`` ask for (None: each
    figure's own) and its options to echo; ``ValueError`` naming the option otherwise."""
    from .inputs.presets import SETUPS
    from .model.engine import MAX_FAULTING_VCPUS, MAX_RECORDS, estimate

    asked = (args.setup, args.vcpus, args.rate, args.spurious)
    if all(value is None for value in asked):
        return None, ""
    setup = args.setup or "static"
    changes = {
        "n_vcpus": args.vcpus,
        "notifier_rate_hz": args.rate,
        "spurious_share": args.spurious,
    }
    try:
        scenario = SETUPS[setup](**{k: v for k, v in changes.items() if v is not None})
    except ValueError as error:
        raise ValueError(_scenario_error(error)) from None
    if scenario.n_faulting >= MAX_FAULTING_VCPUS:
        raise ValueError(
            f"--vcpus {scenario.n_vcpus:,}: the model numbers at most "
            f"{MAX_FAULTING_VCPUS - 1:,} faulting vCPUs (9 in 10 of --vcpus); expected fewer "
            "vCPUs"
        )
    work = estimate(scenario)
    if work.records > MAX_RECORDS:
        raise ValueError(
            f"each run of this VM would simulate {work}, more than the figures' limit of "
            f"{MAX_RECORDS:,} rows: lower --vcpus or --rate"
        )
    runs = 3 if args.kernels is None else len(args.kernels)
    refusal = _check_cost(
        work, runs=runs, option="the figures' limit", limit=MAX_RECORDS, lower="lower --vcpus"
    )
    if refusal:
        raise ValueError(refusal)
    echo = (
        f" --setup {setup} --vcpus {scenario.n_vcpus} --rate {scenario.notifier_rate_hz:g} "
        f"--spurious {scenario.spurious_share:g}"
    )
    return scenario, echo


def _figures(args) -> int:
    from . import gallery  # loads matplotlib: only for this command
    from .model.engine import TooMuchWork

    prog = "kvmviz figures"
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in gallery.FIGURE_FORMATS]
    if unknown or not formats:
        return _fail(
            prog,
            f"--format {args.format!r}: unknown format(s) {', '.join(unknown) or '(none)'}; "
            f"expected some of {', '.join(gallery.FIGURE_FORMATS)}",
        )
    out = Path(args.out)
    problem = _not_a_folder(out, "--out")
    if problem:
        return _fail(prog, problem)
    try:
        scenario, echo_vm = _figures_vm(args)
    except ValueError as error:
        return _fail(prog, str(error))
    refusal = _writable_folder(out, "--out", 0)
    if refusal:
        return _fail(prog, refusal)
    options = echo_vm
    if args.kernels is not None:
        options += f" --kernels {','.join(args.kernels)}"
    if args.width is not None:
        options += f" --width {args.width if isinstance(args.width, str) else f'{args.width:g}'}"
    options += f" --style {args.style}"
    flags = (
        (" --transparent" if args.transparent else "")
        + (" --no-title" if args.no_title else "")
        + (" --force" if args.force else "")
        + (" --no-animations" if args.no_animations else "")
    )
    _keep_going()
    print(
        f"# kvmviz figures --out {args.out} --format {','.join(formats)} "
        f"--context {args.context} -s {args.seed}{options}{flags}  "
        "(staged in a temporary folder beside it, moved in once complete)"
    )
    unchanged = f"{out} is as it was" if out.exists() else "nothing was written"
    try:
        written = gallery.render_all(
            out,
            formats=formats,
            context=args.context,
            seed=args.seed,
            force=args.force,
            animations=not args.no_animations,
            scenario=scenario,
            kernels=args.kernels,
            width=args.width,
            style=args.style,
            transparent=args.transparent,
            title=not args.no_title,
        )
    except TooMuchWork as error:  # faults retried far more than estimated
        size = str(error).partition(": shorten")[0]
        return _fail(prog, f"{size}: lower --vcpus or --rate; {unchanged}")
    except OSError as error:
        if isinstance(error, FileExistsError) and "refusing to overwrite" in str(error):
            message = _os_error(error).replace("pass force=True", "add --force to replace them")
            return _fail(prog, f"{message}; nothing was written")
        return _fail(prog, f"cannot write --out {out}: {_os_error(error)}; {unchanged}")
    except KeyboardInterrupt as stop:
        return _stopped(prog, stop, unchanged)
    for path in written:
        print(path)
    return 0


def _replay(args) -> int:
    from ._shared._progress import describe_bytes
    from .inputs import traces
    from .inputs.kernels import KERNELS_2021
    from .model.engine import MAX_RECORDS, TooMuchWork
    from .stats import experiments, metrics
    from .stats.metrics import KERNEL_TABLE_COLUMNS

    prog = "kvmviz replay"
    kernels = KERNELS_2021 if args.kernels is None else args.kernels
    try:
        targets, echo_trace = _trace_targets(args, Path(args.trace_file).stem, kernels)
    except (ValueError, FileExistsError) as error:
        return _fail(prog, str(error))
    echo_max = f" --max-records {args.max_records}" if args.max_records != MAX_RECORDS else ""
    echo_kernels = "" if args.kernels is None else f" --kernels {','.join(kernels)}"
    print(
        f"# kvmviz replay {args.trace_file} --layout {args.layout} --vcpus {args.vcpus}"
        f"{echo_kernels} --policy {args.policy} -s {args.seed}"
        f"{' --lenient' if args.lenient else ''}{echo_max}{echo_trace}"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage = "--layout"
        try:
            layout = traces.load_layout(args.layout)
            if not any(slot.as_id == 0 for slot in layout):
                return _fail(
                    prog,
                    f"--layout {args.layout}: read as {layout!r}, no memslot in address space "
                    "0 for the vCPUs to fault on; expected a QEMU kvm_set_user_memory log or a "
                    "JSON layout",
                )
            stage = "trace"
            events = traces.load_ftrace(
                args.trace_file,
                lenient=args.lenient,
                progress=_reporter(args, prog, describe_bytes),
            )
            stage = ""
            work, end_us = experiments.replay_work(events, layout, n_vcpus=args.vcpus)
            refusal = _check_runs(
                args,
                work,
                targets,
                kernels,
                end_us=end_us,
                lower="lower --vcpus or replay a shorter stretch of the trace",
            )
            if refusal:
                return _fail(prog, refusal)
            table, runs = experiments.compare_replay(
                events,
                layout,
                kernels=kernels,
                n_vcpus=args.vcpus,
                policy=args.policy,
                seed=args.seed,
                max_records=args.max_records,
            )
        except TooMuchWork as error:
            size = str(error).partition(": shorten")[0].replace("max_records=", "--max-records ")
            return _fail(prog, f"{size}: lower --vcpus or replay a shorter stretch of the trace")
        except (OSError, ValueError) as error:
            message = _os_error(error) if isinstance(error, OSError) else str(error)
            path = args.layout if stage == "--layout" else args.trace_file
            if stage and str(path) not in message and Path(path).name not in message:
                message = f"{stage} {path}: {message}"  # name the file the error is about
            return _fail(prog, message)
    for warning in caught:  # one line each, without the source line warnings would show
        print(f"{prog}: warning: {_one_line(warning.message)}", file=sys.stderr)
    counts = events.attrs.get("line_counts", {})
    print(f"{len(events)} records from {counts.get('total', '?')} lines; {layout!r}")
    for note in table.attrs.get("notes", ()):  # records sorted, idle time cut: say so here
        print(f"# {note}")
    print(table[list(KERNEL_TABLE_COLUMNS)].round(3).to_string())
    for kernel, run in runs.items():
        print(f"\n# perf lock contention, as it would read on {kernel}")
        print(metrics.contention_text(run))
    return _write_traces(prog, targets, runs, args)


def _quiz(args) -> int:
    from . import exercises

    options = {} if args.policy is None else {"policy": args.policy}
    try:
        question = exercises.quiz(args.kind, args.seed, **options)
    except ValueError as error:
        return _fail("kvmviz quiz", str(error))
    except OSError as error:
        return _fail("kvmviz quiz", _os_error(error))
    print(f"# {question.command}{' -c' if args.compute else ''}")
    print(question.question)
    print()
    print(question.reveal() if args.compute else "Answer: ?  (run again with -c to reveal)")
    return 0


_COMMANDS = {"simulate": _simulate, "figures": _figures, "replay": _replay, "quiz": _quiz}
