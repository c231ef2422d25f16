"""The brownout split by what the faults waited behind, static and volatile setups side
by side, seed 0, each total marked with its range over seeds 0-3: the part behind misses
goes to 0 on v5.15, the part behind hits stays.

The gallery's figure 'stall-split': the same bytes as `kvmviz figures` writes.
Usage: python examples/stall_split.py [OUT_DIR] [--force]
"""

import argparse
import tempfile

import kvmviz as kv

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("out", nargs="?", help="folder to write into (default: a new temporary one)")
parser.add_argument("--force", action="store_true", help="replace the files if they exist")
args = parser.parse_args()
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("stall-split", seed=0)
path = f"{args.out or tempfile.mkdtemp(prefix='kvmviz-')}/stall-split"
try:  # an existing file is refused, before anything is written, unless --force
    print(*kv.plot.save(fig, path, force=args.force), sep="\n")
except FileExistsError as error:  # one line on stderr, exit status 1, as `kvmviz figures`
    parser.exit(1, f"{parser.prog}: {str(error).replace('pass force=True', 'add --force')}\n")
