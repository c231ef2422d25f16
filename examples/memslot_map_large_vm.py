"""The 12 TiB VM's memslots, in the VMM's address space and in guest-physical memory, with
200 ms of MMU notifications on them: the spurious ones miss, the others reach guest frames.

The gallery's figure 'memslots-large-vm': the same bytes as `kvmviz figures` writes.

Usage: python examples/memslot_map_large_vm.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("memslots-large-vm", seed=0)
for path in kv.plot.save(fig, f"{out}/memslots-large-vm"):  # refuses to overwrite a file
    print(path)
