"""Named memslot layouts and the two setups of 8931a454ae's message, each citing its source.

The layouts: the hvas are illustrative where the source gives none (QEMU picks them with
``mmap``), but the guest-physical layout follows QEMU's ``pc_q35.c`` rules and observed
``kvm_set_user_memory`` traces (docs/kernel.md §6).

The setups: :func:`static_setup` (every notification spurious for KVM: the VM the commit was
written for) and :func:`volatile_setup` (most notifications on guest memory: where it "barely
qualifies as an optimization"). :data:`SETUPS` names both, for the toggles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import check_bool, check_int
from .memslots import (
    KVM_MEM_MAX_NR_PAGES,
    KVM_USER_MEM_SLOTS,
    PAGE_SHIFT,
    PAGE_SIZE,
    Memslot,
    MemslotLayout,
)

if TYPE_CHECKING:
    from .scenario import Scenario

__all__ = [
    "SETUPS",
    "VMM_HEAP",
    "large_vm_layout",
    "many_memslots_layout",
    "q35_512m_layout",
    "setup",
    "static_setup",
    "volatile_setup",
]

GiB = 1 << 30
TiB = 1 << 40
# The VMM's own anonymous memory (heap, thread stacks, I/O buffers): no memslot maps it, so a
# notifier on it is spurious for KVM. A glibc heap sits just above the executable at 0x5555...
VMM_HEAP = (0x555555554000, 0x555555554000 + 4 * GiB)


def _slot(slot, gpa, size, ua, flags=0, as_id=0) -> Memslot:
    return Memslot(
        slot=slot,
        base_gfn=gpa >> PAGE_SHIFT,
        npages=size >> PAGE_SHIFT,
        userspace_addr=ua,
        as_id=as_id,
        flags=flags,
    )


def q35_512m_layout() -> MemslotLayout:
    """The final memslots of ``qemu-system-x86_64 -machine q35 -m 512 -S`` (QEMU 7.2).

    Recorded with ``-d trace:kvm_set_user_memory`` in ``data/qemu/q35-512m-paused.txt``: slot 0
    is first registered as all of RAM, then deleted and re-added as 0xc0000 bytes once the ROM
    area is carved out; the SMRAM alias (slot 2 at 0xfeda0000) is deleted and the id reused.
    """
    return MemslotLayout(
        [
            _slot(0, 0x0, 0xC0000, 0x7F6FFBE00000),
            _slot(1, 0xFFFC0000, 0x40000, 0x7F7023000000, flags=0x2),
            _slot(2, 0xC0000, 0x20000, 0x7F7022E00000, flags=0x2),
            _slot(3, 0xE0000, 0x20000, 0x7F7023020000, flags=0x2),
            _slot(4, 0x100000, 0x1FF00000, 0x7F6FFBF00000),
        ]
    )


def large_vm_layout(ram_bytes: int = 12 * TiB, *, smm: bool = False) -> MemslotLayout:
    """A q35 VM with ``ram_bytes`` of RAM: 12 TiB by default, the m2-ultramem-416 VM.

    q35 puts 2 GiB of RAM below 4 GiB when RAM is at least 2.75 GiB and the rest at 4 GiB
    (``hw/i386/pc_q35.c``); the low RAM is split around the legacy VGA/ROM hole as in the
    observed trace of docs/kernel.md §6.1 (0x0/0xc0000, ROMs, 0x100000/0x7ff00000). Guest RAM is one
    RAM block, so low and high RAM are contiguous in the VMM's address space. With ``smm=True``
    address space 1 aliases the RAM slots with the same hvas (QEMU's "kvm-smram" listener).
    """
    ram_bytes = check_int(ram_bytes, "ram_bytes")  # 4.5 TiB as a float is not a size in bytes
    smm = check_bool(smm, "smm")  # "no" is not False
    if ram_bytes < 4 * GiB or ram_bytes % (2 << 20):
        raise ValueError(f"ram_bytes must be a multiple of 2 MiB and >= 4 GiB, got {ram_bytes}")
    low = 2 * GiB
    ram_hva = 0x7F0000000000 - ram_bytes  # one mmap of all guest RAM, below the libraries
    rom_hva = 0x7F7022E00000
    ram = [
        _slot(0, 0x0, 0xC0000, ram_hva),
        _slot(5, 0x100000, low - 0x100000, ram_hva + 0x100000),
    ]
    # High RAM, in slots of at most KVM_MEM_MAX_NR_PAGES (KVM refuses a bigger one with
    # -EINVAL), cut at 1 GiB boundaries so 1 GiB pages stay whole, as a VMM splits it.
    chunk = (KVM_MEM_MAX_NR_PAGES << PAGE_SHIFT) // GiB * GiB
    offset, ids = 0, iter([1, *range(6, KVM_USER_MEM_SLOTS)])
    while offset < ram_bytes - low:
        size = min(chunk, ram_bytes - low - offset)
        ram.append(_slot(next(ids), 4 * GiB + offset, size, ram_hva + low + offset))
        offset += size
    roms = [
        _slot(2, 0xC0000, 0x20000, rom_hva, flags=0x2),
        _slot(3, 0xE0000, 0x20000, rom_hva + 0x220000, flags=0x2),
        _slot(4, 0xFFFC0000, 0x40000, rom_hva + 0x200000 - 0x40000, flags=0x2),
    ]
    smram = (
        [Memslot(s.slot, s.base_gfn, s.npages, s.userspace_addr, as_id=1) for s in ram]
        if smm
        else []
    )
    return MemslotLayout(ram + roms + smram)


def many_memslots_layout(n_slots: int = 512, slot_bytes: int = 2 << 20) -> MemslotLayout:
    """``n_slots`` equal slots back to back, as with Hyper-V SynIC overlay pages or virtio-mem.

    4fc096a99e01 raised the x86 limit to 32,764 user slots because Windows guests with SynIC
    need two slots per vCPU (docs/kernel.md §2.2).
    """
    n_slots = check_int(n_slots, "n_slots")
    if not 1 <= n_slots <= KVM_USER_MEM_SLOTS:
        raise ValueError(
            f"n_slots must be in [1, {KVM_USER_MEM_SLOTS}] (KVM_USER_MEM_SLOTS), got {n_slots}"
        )
    slot_bytes = check_int(slot_bytes, "slot_bytes")
    if slot_bytes <= 0 or slot_bytes % PAGE_SIZE:
        raise ValueError(
            f"slot_bytes = {slot_bytes}: expected a positive multiple of 4 KiB (a memslot is "
            "whole pages)"
        )
    base_hva = 0x7E0000000000
    npages = slot_bytes >> PAGE_SHIFT
    return MemslotLayout(
        Memslot(i, i * npages, npages, base_hva + i * slot_bytes) for i in range(n_slots)
    )


# --------------------------------------------------------------------------------------------
# The two setups of 8931a454aea0's message.
# --------------------------------------------------------------------------------------------
# The VMM's own churn (munmap/madvise of its heap, the host aging its own pages): no public
# number exists (docs/parameters.md, table C), so it is the free notifier_rate_hz default.
VMM_CHURN_HZ = 2_000.0
# Notifications on guest memory in the volatile setup, events per second, each bounded by a
# documented kernel default (docs/parameters.md, "the volatile setup"):
KSM_MERGES_HZ = 500.0  # ksmd scans 100 pages every 20 ms (ksm.rst): 5,000 pages/s, 1 in 10 merge
MIGRATIONS_HZ = 500.0  # NUMA balancing marks <= 256 MB per scan, >= 100 ms apart (sched/fair.c)
GUEST_AGING_HZ = 2_000.0  # DAMON samples >= 10 regions every 5 ms (mm/damon/core.c defaults)


def static_setup(**changes) -> Scenario:
    """The VM 8931a454ae was written for: hundreds of vCPUs, every notification spurious.

    "For large VMs (hundreds of threads) with static setups, e.g. no page migration, no
    swapping, etc..., the vast majority of MMU notifier callbacks will be unrelated to the
    guest, e.g. will often be in response to the userspace VMM adjusting its own virtual
    address space" (8931a454aea0's message). Here *all* of them are: the 416-vCPU, 12 TiB VM of
    :class:`~kvmviz.Scenario` (Gardon's m2-ultramem-416), rebuilding its huge pages after live
    migration ("a significant percentage of vCPUs will be attempting to handle page faults"),
    while the VMM munmaps and madvises its own heap and the host ages the VMM's own pages, at
    ``VMM_CHURN_HZ`` = 2,000 events/s (*free*: no public number exists for a VMM's own churn).
    No notification reaches guest memory, so on v5.15 no callback takes ``mmu_lock``.

    Parameters
    ----------
    **changes
        Any :class:`~kvmviz.Scenario` field to change (validated as usual).

    Returns
    -------
    Scenario
    """
    from .scenario import Scenario

    base = {"notifier_rate_hz": VMM_CHURN_HZ, "spurious_share": 1.0}
    return Scenario(**{**base, **changes})


def volatile_setup(**changes) -> Scenario:
    """The same VM with most notifications on guest memory, where 8931a454ae "barely
    qualifies".

    "For 'volatile' setups where the majority of notifications _are_ relevant, this barely
    qualifies as an optimization" (8931a454aea0's message). The VMM's own churn is that of
    :func:`static_setup` (2,000 events/s), and on top of it the host works on guest memory at
    rates each bounded by a documented kernel default (docs/parameters.md):

    * KSM merges 500 pages/s: ``ksmd`` scans ``pages_to_scan`` = 100 pages every
      ``sleep_millisecs`` = 20 ms (Documentation/admin-guide/mm/ksm.rst, mm/ksm.c), 5,000
      pages/s; one in ten merging is *free*. Each merge is ``write_protect_page()`` then
      ``replace_page()``, two start / ``change_pte`` / end triples on one page.
    * 500 page migrations/s: NUMA balancing marks up to ``numa_balancing_scan_size_mb`` = 256 MB
      per scan, scans at least 100 ms apart on a large VM (``MAX_SCAN_WINDOW`` = 2,560 MB/s,
      kernel/sched/fair.c); how many of the marked pages then migrate is *free*.
    * 2,000 aging calls/s on guest pages: DAMON samples each of at least ``min_nr_regions`` =
      10 regions every ``sample_interval`` = 5 ms (mm/damon/core.c defaults).

    That is 3,000 of 5,000 events/s on guest memory: the majority relevant, as the commit says.

    Parameters
    ----------
    **changes
        Any :class:`~kvmviz.Scenario` field to change.

    Returns
    -------
    Scenario
    """
    from .scenario import Scenario

    hits = KSM_MERGES_HZ + MIGRATIONS_HZ + GUEST_AGING_HZ
    base = {
        "notifier_rate_hz": VMM_CHURN_HZ + hits,
        "spurious_share": VMM_CHURN_HZ / (VMM_CHURN_HZ + hits),
        # (migration, ksm, guest_aging), as notifiers.generate_stream draws the causes
        "relevant_mix": (MIGRATIONS_HZ, KSM_MERGES_HZ, GUEST_AGING_HZ),
    }
    return Scenario(**{**base, **changes})


SETUPS = {"static": static_setup, "volatile": volatile_setup}
"""The two setups by name, in the order the toggles show them."""


def setup(name: str, **changes) -> Scenario:
    """:data:`SETUPS` by name: ``setup("static")`` or ``setup("volatile")``."""
    if not isinstance(name, str) or name not in SETUPS:
        raise ValueError(f"unknown setup {name!r}; expected one of {tuple(SETUPS)}")
    return SETUPS[name](**changes)
