"""`perf lock contention` for the simulated mmu_lock: who waited, how long, on v5.12 and v5.15.

Usage: python examples/contention_table.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile
from pathlib import Path

import kvmviz as kv

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-"))
scenario = kv.Scenario()  # 416 vCPUs, 12 TiB, 95% of the notifications spurious
for kernel in ("v5.12", "v5.15"):
    text = kv.metrics.contention_text(kv.simulate(scenario, kernel=kernel, seed=0))
    print(f"# {kernel}\n{text}")
    path = out / f"contention-{kernel}.txt"
    out.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as handle:  # "x": never overwrite
        handle.write(text)
    print(path)
