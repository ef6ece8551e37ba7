"""GPU inventories that read something: NVML (nvidia-ml-py) on real machines, a JSON file of
simulated devices for demos and tests, and the one place that picks an inventory from the
configuration. The reading's shape, the Protocol and the configured inventory are in
``core.gpus``."""
from __future__ import annotations

import json

from ..core.gpus import Gpu, GpuInventory, InventoryReading, StaticInventory


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


class FileInventory:
    """Simulated devices listed in a JSON file (as :class:`StaticInventory` takes them), read
    again at every reading: a demo or a test changes utilisation by rewriting the file."""

    def __init__(self, path: str):
        self.path = path

    def read(self) -> InventoryReading:
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
