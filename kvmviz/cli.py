"""``kvmviz`` on the command line: ``python -m kvmviz simulate``, ``figures`` and ``quiz``.

Every run echoes its parameters, so any screenshot of the output can be reproduced.
"""

from __future__ import annotations

import argparse
import sys

from . import exercises
from .kernels import KERNELS
from .metrics import KERNEL_TABLE_COLUMNS, compare_kernels
from .rwlock import POLICIES
from .scenario import Scenario

__all__ = ["main"]

_QUIZ = {
    "takes-lock": exercises.takes_lock_question,
    "zapped-gfns": exercises.zapped_gfns,
    "grant-order": exercises.grant_order,
    "must-retry": exercises.must_retry,
    "callback-order": exercises.callback_order,
    "reader-wait": exercises.reader_wait,
    "walk-threshold": exercises.memslot_walk_threshold,
    "flush-hold": exercises.hit_flush_hold,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvmviz",
        description="KVM mmu_lock vs MMU notifiers, before and after Linux 8931a454ae.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="compare v5.12 / v5.13 / v5.15 on one scenario")
    sim.add_argument("--vcpus", type=int, default=Scenario.n_vcpus, help="vCPUs (default 416)")
    sim.add_argument("--duration-ms", type=float, default=20.0, help="simulated ms (default 20)")
    sim.add_argument(
        "--rate",
        type=float,
        default=Scenario.notifier_rate_hz,
        help="notification events per second",
    )
    sim.add_argument(
        "--spurious",
        type=float,
        default=Scenario.spurious_share,
        help="share of notifications that miss every memslot",
    )
    sim.add_argument("--policy", choices=POLICIES, default="qrwlock")
    sim.add_argument("-s", "--seed", type=int, default=0)
    figs = sub.add_parser(
        "figures", help="render every figure of the notebooks and the README into a directory"
    )
    figs.add_argument("--out", required=True, metavar="DIR", help="output directory")
    figs.add_argument(
        "--format",
        default="svg,png",
        metavar="FMT[,FMT]",
        help="comma-separated file formats among svg, png, pdf (default svg,png)",
    )
    figs.add_argument("--context", choices=("paper", "talk"), default="paper")
    figs.add_argument("-s", "--seed", type=int, default=0)
    figs.add_argument("--force", action="store_true", help="overwrite existing files")
    figs.add_argument(
        "--no-animations",
        action="store_true",
        help="skip the exports other modules register (the animations take most of the time)",
    )
    rep = sub.add_parser(
        "replay", help="what a recorded notifier trace would cost on v5.12 / v5.13 / v5.15"
    )
    rep.add_argument("trace", help="tracefs `trace` file or `trace-cmd report` output")
    rep.add_argument(
        "--layout", required=True, help="memslots: QEMU kvm_set_user_memory log or JSON layout"
    )
    rep.add_argument("--vcpus", type=int, default=64, help="modelled vCPUs (default 64)")
    rep.add_argument("--policy", choices=POLICIES, default="qrwlock")
    rep.add_argument("-s", "--seed", type=int, default=0)
    rep.add_argument(
        "--lenient", action="store_true", help="skip (and count) malformed trace lines"
    )
    quiz = sub.add_parser("quiz", help="a seeded exercise; -c reveals the answer")
    quiz.add_argument("kind", choices=sorted(_QUIZ), nargs="?", default="takes-lock")
    quiz.add_argument("-s", "--seed", type=int, default=0)
    quiz.add_argument("-c", "--compute", action="store_true", help="show the answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kvmviz`` script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "simulate":
        try:
            scenario = Scenario(
                n_vcpus=args.vcpus,
                duration_us=args.duration_ms * 1000,
                notifier_rate_hz=args.rate,
                spurious_share=args.spurious,
            )
        except ValueError as error:
            print(f"kvmviz simulate: {error}", file=sys.stderr)
            return 2
        print(
            f"# kvmviz simulate --vcpus {args.vcpus} --duration-ms {args.duration_ms:g} "
            f"--rate {args.rate:g} --spurious {args.spurious:g} --policy {args.policy} "
            f"-s {args.seed}"
        )
        table = compare_kernels(scenario, policy=args.policy, seed=args.seed, kernels=KERNELS)
        print(table[list(KERNEL_TABLE_COLUMNS)].round(3).to_string())
        return 0
    if args.command == "figures":
        return _figures(args)
    if args.command == "replay":
        return _replay(args)
    question = _QUIZ[args.kind](seed=args.seed)
    print(f"# kvmviz quiz {args.kind} -s {args.seed}{' -c' if args.compute else ''}")
    print(question.question)
    print()
    print(question.reveal() if args.compute else "Answer: ?  (run again with -c to reveal)")
    return 0


def _figures(args) -> int:
    from . import figures  # loads matplotlib: only for this command

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in figures.FORMATS]
    if unknown or not formats:
        print(
            f"kvmviz figures: unknown format(s) {', '.join(unknown) or '(none)'}; "
            f"expected some of {', '.join(figures.FORMATS)}",
            file=sys.stderr,
        )
        return 2
    flags = (" --force" if args.force else "") + (" --no-animations" if args.no_animations else "")
    print(
        f"# kvmviz figures --out {args.out} --format {','.join(formats)} "
        f"--context {args.context} -s {args.seed}{flags}"
    )
    try:
        written = figures.render_all(
            args.out,
            formats=formats,
            context=args.context,
            seed=args.seed,
            force=args.force,
            extra=not args.no_animations,
        )
    except FileExistsError as error:
        message = str(error).replace("pass force=True", "add --force to overwrite them")
        print(f"kvmviz figures: {message}; nothing was written", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def _replay(args) -> int:
    from . import plot, traces  # plot's table helpers load matplotlib: only for this command

    print(
        f"# kvmviz replay {args.trace} --layout {args.layout} --vcpus {args.vcpus} "
        f"--policy {args.policy} -s {args.seed}{' --lenient' if args.lenient else ''}"
    )
    try:
        layout = traces.load_layout(args.layout)
        events = traces.load_ftrace(args.trace, lenient=args.lenient, progress=True)
        table, runs = traces.compare_replay(
            events, layout, n_vcpus=args.vcpus, policy=args.policy, seed=args.seed
        )
    except (OSError, ValueError) as error:
        print(f"kvmviz replay: {error}", file=sys.stderr)
        return 2
    counts = events.attrs.get("line_counts", {})
    print(f"{len(events)} records from {counts.get('total', '?')} lines; {layout!r}")
    print(table[list(KERNEL_TABLE_COLUMNS)].round(3).to_string())
    for kernel, run in runs.items():
        print(f"\n# perf lock contention, as it would read on {kernel}")
        print(plot.contention_text(run))
    return 0
