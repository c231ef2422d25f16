"""The 12 TiB VM's memslots, in the VMM's address space and in guest-physical memory, with
200 ms of MMU notifications on them: the spurious ones miss, the others reach guest frames.

The gallery's figure 'memslots-large-vm': the same bytes as `kvmviz figures` writes.
Usage: python examples/memslot_map_large_vm.py [OUT_DIR] [--force]
"""

import argparse
import tempfile

import kvmviz as kv

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("out", nargs="?", help="folder to write into (default: a new temporary one)")
parser.add_argument("--force", action="store_true", help="replace the files if they exist")
args = parser.parse_args()
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("memslots-large-vm", seed=0)
path = f"{args.out or tempfile.mkdtemp(prefix='kvmviz-')}/memslots-large-vm"
try:  # an existing file is refused, before anything is written, unless --force
    print(*kv.plot.save(fig, path, force=args.force), sep="\n")
except FileExistsError as error:  # one line on stderr, exit status 1, as `kvmviz figures`
    parser.exit(1, f"{parser.prog}: {str(error).replace('pass force=True', 'add --force')}\n")
