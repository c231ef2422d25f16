"""Each fault's stall and each kernel's brownout split by what it waited behind (static
setup), with the writers' mean wait.

The gallery's figure 'stall-by-kernel': the same bytes as `kvmviz figures` writes.
Usage: python examples/stall_by_kernel.py [OUT_DIR] [--force]
"""

import argparse
import tempfile

import kvmviz as kv

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("out", nargs="?", help="folder to write into (default: a new temporary one)")
parser.add_argument("--force", action="store_true", help="replace the files if they exist")
args = parser.parse_args()
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("stall-by-kernel", seed=0)
path = f"{args.out or tempfile.mkdtemp(prefix='kvmviz-')}/stall-by-kernel"
try:  # an existing file is refused, before anything is written, unless --force
    print(*kv.plot.save(fig, path, force=args.force), sep="\n")
except FileExistsError as error:  # one line on stderr, exit status 1, as `kvmviz figures`
    parser.exit(1, f"{parser.prog}: {str(error).replace('pass force=True', 'add --force')}\n")
