"""Named memslot layouts drawn from real systems, each citing its source.

The hvas are illustrative where the source gives none (QEMU picks them with ``mmap``), but the
guest-physical layout follows QEMU's ``pc_q35.c`` rules and observed ``kvm_set_user_memory``
traces (docs/kernel.md §6). :mod:`kvmviz.presets` re-exports them beside the named setups.
"""

from __future__ import annotations

from .._shared._checks import check_bool, check_int
from .memslots import (
    KVM_MEM_MAX_NR_PAGES,
    KVM_USER_MEM_SLOTS,
    PAGE_SHIFT,
    PAGE_SIZE,
    Memslot,
    MemslotLayout,
)

__all__ = [
    "VMM_HEAP",
    "large_vm_layout",
    "many_memslots_layout",
    "q35_512m_layout",
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
