"""The one GPU inventory seam, shared by the spawner, the job runner and the admin page.

Real machines are read through nvidia-ml-py (NVML). Machines without a GPU or without the NVIDIA
driver get an empty inventory with a reason, never an exception. Tests and GPU-less demos inject a
:class:`StaticInventory` with simulated devices.
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


class NvmlInventory:
    """GPUs discovered through NVML; an empty reading with the reason when NVML is absent."""

    def read(self) -> InventoryReading:
        try:
            import pynvml
        except ImportError:  # nvidia-ml-py not installed
            return InventoryReading(reason="nvidia-ml-py is not installed")
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            # NVMLError_LibraryNotFound / DriverNotLoaded on machines without the driver
            return InventoryReading(reason=f"no NVIDIA driver: {e}")
        try:
            gpus = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                try:
                    util = pynvml.nvmlDeviceGetUtilizationRates(h).gpu
                except pynvml.NVMLError:
                    util = None
                name = pynvml.nvmlDeviceGetName(h)
                uuid = pynvml.nvmlDeviceGetUUID(h)
                gpus.append(
                    Gpu(
                        index=i,
                        uuid=uuid.decode() if isinstance(uuid, bytes) else uuid,
                        name=name.decode() if isinstance(name, bytes) else name,
                        memory_total_mb=mem.total // 2**20,
                        memory_used_mb=mem.used // 2**20,
                        utilization_pct=util,
                    )
                )
            return InventoryReading(gpus=gpus, reason="" if gpus else "NVML sees no GPU")
        finally:
            pynvml.nvmlShutdown()


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


class FileInventory:
    """Simulated devices listed in a JSON file (as :class:`StaticInventory` takes them), read
    again at every reading: a demo or a test changes utilisation by rewriting the file."""

    def __init__(self, path: str):
        self.path = path

    def read(self) -> InventoryReading:
        import json

        try:
            with open(self.path) as f:
                devices = json.load(f)
        except (OSError, ValueError) as e:
            return InventoryReading(source="configured", reason=f"{self.path} unreadable: {e}")
        return StaticInventory(devices).read()


def inventory_from_config(devices: list[dict] | str | None) -> GpuInventory:
    """``None`` means discover with NVML; a list (even empty) means a configured inventory; a
    string names a file of simulated devices (:class:`FileInventory`)."""
    if isinstance(devices, str):
        return FileInventory(devices)
    return NvmlInventory() if devices is None else StaticInventory(devices)


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
