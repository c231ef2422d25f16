"""`perf lock contention` for the simulated mmu_lock: who waited, how long, on v5.12 and v5.15.

The tables of kvmviz.gallery.TABLES ("contention-v5.12", "contention-v5.15"), one file each.
Usage: python examples/contention_table.py [OUT_DIR] [--force]
"""

import argparse
import tempfile
from pathlib import Path

import kvmviz as kv

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("out", nargs="?", help="folder to write into (default: a new temporary one)")
parser.add_argument("--force", action="store_true", help="replace the files if they exist")
args = parser.parse_args()
out = Path(args.out or tempfile.mkdtemp(prefix="kvmviz-"))
paths = {name: out / f"{name}.txt" for name in kv.gallery.TABLES}
existing = [str(p) for p in paths.values() if p.exists()]
if existing and not args.force:  # refused before any file is written, like `kvmviz figures`
    parser.exit(1, f"{parser.prog}: refusing to overwrite {', '.join(existing)} (add --force)\n")
out.mkdir(parents=True, exist_ok=True)
for name, path in paths.items():  # each table: the 416-vCPU VM on one kernel
    path.write_text(kv.gallery.table(name, seed=0), encoding="utf-8")
    print(path)
