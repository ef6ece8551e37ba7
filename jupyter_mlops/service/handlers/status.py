from ..._version import __version__
from .base import ApiHandler


class StatusHandler(ApiHandler):
    async def get(self):
        reading = self.context.gpu_inventory.read()
        self.write_json(
            {
                "service": "jupyter-mlops control plane",
                "version": __version__,
                "user": self.caller.name,
                "role": self.caller.role,
                "gpus": {"total": len(reading.gpus), "reason": reading.reason},
            }
        )
