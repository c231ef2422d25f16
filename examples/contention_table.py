"""`perf lock contention` for the simulated mmu_lock: who waited, how long, on v5.12 and v5.15.

The tables of kvmviz.gallery.TABLES ("contention-v5.12", "contention-v5.15"), one file each.

Usage: python examples/contention_table.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile
from pathlib import Path

import kvmviz as kv

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-"))
out.mkdir(parents=True, exist_ok=True)
for name in kv.gallery.TABLES:
    text = kv.gallery.table(name, seed=0)  # the 416-vCPU VM on one kernel
    print(f"# {name}\n{text}")
    with open(out / f"{name}.txt", "x", encoding="utf-8") as handle:  # "x": never overwrite
        handle.write(text)
    print(out / f"{name}.txt")
