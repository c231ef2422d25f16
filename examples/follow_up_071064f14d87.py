"""The follow-up: v5.13 against v5.15 (071064f14d87, a start/end pair takes mmu_lock only if
its range hits a memslot too) on the static setup, fault stalls and brownout; the caption
states both kernels' brownouts.

The gallery's figure 'follow-up-071064f14d87': the same bytes as `kvmviz figures` writes.
Usage: python examples/follow_up_071064f14d87.py [OUT_DIR] [--force]
"""

import argparse
import tempfile

import kvmviz as kv

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("out", nargs="?", help="folder to write into (default: a new temporary one)")
parser.add_argument("--force", action="store_true", help="replace the files if they exist")
args = parser.parse_args()
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("follow-up-071064f14d87", seed=0)
path = f"{args.out or tempfile.mkdtemp(prefix='kvmviz-')}/follow-up-071064f14d87"
try:  # an existing file is refused, before anything is written, unless --force
    print(*kv.plot.save(fig, path, force=args.force), sep="\n")
except FileExistsError as error:  # one line on stderr, exit status 1, as `kvmviz figures`
    parser.exit(1, f"{parser.prog}: {str(error).replace('pass force=True', 'add --force')}\n")
