"""The 12 TiB VM's memslots, in the VMM's address space and in guest-physical memory, with
200 ms of MMU notifications on them: the spurious ones miss, the others reach guest frames.

Usage: python examples/memslot_map_large_vm.py [OUT_DIR]  (default: a new temporary dir)
"""

import sys
import tempfile

import matplotlib.pyplot as plt

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
scenario = kv.Scenario(duration_us=200_000)
stream = kv.notifiers.generate_stream(scenario, seed=0)  # the notifications alone
stream["hit"] = scenario.layout.hit_mask(stream["hva_start"], stream["hva_end"])

fig, axes = plt.subplots(2, 1, figsize=(10, 3.8), height_ratios=[2, 1], layout="constrained")
kv.plot.memslot_map(scenario.layout, stream, ax=axes, gfn_view=True, regions=[kv.presets.VMM_HEAP])
for path in kv.plot.save(fig, f"{out}/memslots-large-vm"):  # refuses to overwrite a file
    print(path)
