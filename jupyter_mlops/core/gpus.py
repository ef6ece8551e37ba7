"""The one GPU inventory seam, shared by the spawner, the job runner and the admin page.

What a GPU inventory answers (:class:`InventoryReading`), the :class:`GpuInventory` Protocol, a
configured :class:`StaticInventory`, and which GPUs a server may use or holds. Reading real
devices (NVML) and simulated devices from a file are adapters: ``backends.gpu_inventory``, whose
``inventory_from_config`` picks one. Machines without a GPU or without the NVIDIA driver get an
empty inventory with a reason, never an exception.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Protocol


@dataclass(frozen=True)
class Gpu:
    """One physical GPU as the inventory sees it."""

    index: int
    uuid: str
    name: str
    memory_total_mb: int
    memory_used_mb: int | None = None
    utilization_pct: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class InventoryReading:
    """What an inventory answered: the GPUs, and why there are none when there are none."""

    gpus: list[Gpu] = field(default_factory=list)
    source: str = "nvml"
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "reason": self.reason,
            "gpus": [g.to_dict() for g in self.gpus],
        }


class GpuInventory(Protocol):
    def read(self) -> InventoryReading: ...


class StaticInventory:
    """A configured list of GPUs (simulated on machines without any, or pinned by an admin).

    ``devices`` items are dicts with at least ``name``; ``memory_total_mb``, ``uuid``,
    ``utilization_pct`` and ``memory_used_mb`` are optional.
    """

    def __init__(self, devices: Iterable[dict]):
        self._gpus = [
            Gpu(
                index=i,
                uuid=d.get("uuid", f"GPU-simulated-{i}"),
                name=d.get("name", "Simulated GPU"),
                memory_total_mb=int(d.get("memory_total_mb", 16384)),
                memory_used_mb=d.get("memory_used_mb"),
                utilization_pct=d.get("utilization_pct"),
            )
            for i, d in enumerate(devices)
        ]

    def read(self) -> InventoryReading:
        return InventoryReading(
            gpus=list(self._gpus),
            source="configured",
            reason="" if self._gpus else "no GPU configured",
        )


def visible(reading: InventoryReading, cuda_visible_devices: str | None) -> InventoryReading:
    """Restrict a reading to the devices a process may use (``CUDA_VISIBLE_DEVICES`` semantics).

    Unset means every device; an empty string (or "-1") means none.
    """
    if cuda_visible_devices is None:
        return reading
    wanted = [t.strip() for t in cuda_visible_devices.split(",") if t.strip()]
    if not wanted or wanted == ["-1"]:
        return InventoryReading(gpus=[], source=reading.source, reason="no GPU on this server")
    gpus = [g for g in reading.gpus if str(g.index) in wanted or g.uuid in wanted]
    return InventoryReading(
        gpus=gpus, source=reading.source, reason="" if gpus else "no GPU on this server"
    )


SIMULATED_NAME = "GPU held by allocation (not seen by the driver)"


def held(reading: InventoryReading, cuda_visible_devices: str | None,
         nvidia_visible_devices: str | None = None) -> InventoryReading:
    """The GPUs a server holds by its allocation, as the spawner announced it.

    ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) and ``NVIDIA_VISIBLE_DEVICES`` (UUIDs, or
    ``void``/``none``) say which devices the server holds; the inventory says what it can see of
    them. A held device the inventory does not see (a simulated GPU, or NVML absent where the
    device is real) is still reported, from the allocation alone, with no utilisation data:
    the server holds it, and saying "no GPU" would be wrong. Neither variable set (a server
    started outside the platform, or a Kubernetes pod where NVML sees only its own devices)
    means every device the inventory sees.
    """
    indices = _tokens(cuda_visible_devices)
    uuids = [t for t in _tokens(nvidia_visible_devices) if t.lower() not in ("void", "none")]
    if cuda_visible_devices is None and (nvidia_visible_devices is None
                                         or [t.lower() for t in uuids] == ["all"]):
        return reading
    shown = visible(reading, cuda_visible_devices) if cuda_visible_devices is not None \
        else InventoryReading(gpus=[g for g in reading.gpus if g.uuid in uuids],
                              source=reading.source)
    if uuids and len(indices) not in (0, len(uuids)):
        indices = []  # the two lists do not pair up: trust the UUIDs
    pairs = list(zip(indices, uuids)) if indices and uuids else \
        [(t, "") for t in indices] if indices else [("", u) for u in uuids]
    gpus, unseen = list(shown.gpus), []
    for token, uuid in pairs:
        if any(str(g.index) == token or g.uuid in (token, uuid) for g in gpus):
            continue
        index = int(token) if token.isdigit() else len(gpus)
        unseen.append(Gpu(index=index, uuid=uuid or token, name=SIMULATED_NAME,
                          memory_total_mb=0))
    gpus += unseen
    if not gpus:
        return InventoryReading(gpus=[], source=reading.source, reason="no GPU on this server")
    return InventoryReading(
        gpus=gpus, source="allocation" if unseen else shown.source,
        reason=("held by allocation, not seen by the driver (simulated): no utilisation data"
                if unseen else ""),
    )


def _tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip() and t.strip() != "-1"]
