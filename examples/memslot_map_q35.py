"""The memslots QEMU 7.2 registers for `-machine q35 -m 512` (recorded in data/qemu/): the
low RAM split around the legacy ROMs, and the BIOS aliased just below 4 GiB.

Usage: python examples/memslot_map_q35.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import matplotlib.pyplot as plt

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
layout = kv.presets.q35_512m_layout()
print(layout.to_frame().to_string(formatters={"hva_start": hex, "hva_end": hex}))

fig, axes = plt.subplots(2, 1, figsize=(10, 3.2), height_ratios=[1, 1], layout="constrained")
kv.plot.memslot_map(layout, ax=axes, gfn_view=True)
for path in kv.plot.save(fig, f"{out}/memslots-q35"):  # refuses to overwrite a file
    print(path)
