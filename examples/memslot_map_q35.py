"""The memslots QEMU 7.2 registers for `-machine q35 -m 512` (recorded in data/qemu/): the
low RAM split around the legacy ROMs, the BIOS aliased just below 4 GiB; 200 ms of notifications.

The gallery's figure 'memslots-q35': the same bytes as `kvmviz figures` writes.

Usage: python examples/memslot_map_q35.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("memslots-q35", seed=0)
for path in kv.plot.save(fig, f"{out}/memslots-q35"):  # refuses to overwrite a file
    print(path)
