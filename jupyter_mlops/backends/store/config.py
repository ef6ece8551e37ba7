"""Store settings (traitlets) and the one place that turns them into a store."""
from __future__ import annotations

from traitlets import Bool, CaselessStrEnum, Float, Unicode
from traitlets.config import Configurable

from .base import ObjectStore


class StoreSettings(Configurable):
    """Where the control plane keeps dataset bytes. Example (S3 on SeaweedFS or MinIO)::

        c.StoreSettings.backend = "s3"
        c.StoreSettings.s3_endpoint_url = "http://seaweedfs:8333"
        c.StoreSettings.s3_bucket = "mlops-datasets"
        c.StoreSettings.s3_access_key_id = "..."
        c.StoreSettings.s3_secret_access_key = "..."
    """

    backend = CaselessStrEnum(
        ["local", "s3"], "local",
        help="""``local``: a directory (``local_root``); ``s3``: a bucket of any S3 server.""",
    ).tag(config=True)

    local_root = Unicode(
        "",
        help="""Directory of the local store. Empty: ``<data dir>/store``.""",
    ).tag(config=True)

    s3_endpoint_url = Unicode(
        "",
        help="""S3 endpoint, e.g. ``http://127.0.0.1:8333`` (SeaweedFS), ``http://minio:9000``.
        Empty means AWS.""",
    ).tag(config=True)

    s3_bucket = Unicode("", help="Bucket holding the objects (created if missing).").tag(
        config=True)

    s3_prefix = Unicode(
        "", help="Key prefix inside the bucket, e.g. ``datasets/`` to share a bucket.",
    ).tag(config=True)

    s3_region = Unicode("us-east-1", help="Region name sent to the S3 server.").tag(config=True)

    s3_path_style = Bool(
        True,
        help="""Path-style addressing (``endpoint/bucket/key``). Needed by SeaweedFS, MinIO
        and most on-premise servers; set False for virtual-hosted AWS buckets.""",
    ).tag(config=True)

    s3_access_key_id = Unicode("", help="S3 access key id (empty: boto3's usual lookup).").tag(
        config=True)

    s3_secret_access_key = Unicode("", help="S3 secret key (empty: boto3's lookup).").tag(
        config=True)

    s3_server_side_encryption = CaselessStrEnum(
        ["", "AES256", "aws:kms"], "",
        help="""Server-side encryption asked for on every object written: ``AES256`` (SSE-S3,
        keys the S3 server manages), ``aws:kms`` (SSE-KMS, with ``s3_sse_kms_key_id``), or
        empty (the bucket's default, if any). An object the server stores without the
        encryption asked for is deleted again and the write fails. Tested against SeaweedFS
        (``WEED_S3_SSE_KEY`` for SSE-S3, a KMS provider in its ``-s3.config`` for SSE-KMS);
        AWS, MinIO (with KES) and Ceph RGW speak the same headers. Example::

            c.StoreSettings.s3_server_side_encryption = "aws:kms"
            c.StoreSettings.s3_sse_kms_key_id = "lab-datasets"
        """,
    ).tag(config=True)

    s3_sse_kms_key_id = Unicode(
        "",
        help="""KMS key id (or ARN, or alias) for ``s3_server_side_encryption = "aws:kms"``;
        empty: the server's default KMS key.""",
    ).tag(config=True)

    partial_upload_grace_seconds = Float(
        3600.0,
        help="""At control-plane start, partial uploads (objects whose upload was interrupted)
        are removed from the store. A local store the control plane holds alone is swept whole:
        no upload can be running then. An S3 store, or a local directory another control plane
        also writes to, may have uploads under way, so only those begun longer ago than this
        are removed (an upload of one object takes seconds; an hour is generous).""",
    ).tag(config=True)

    s3_connect_timeout = Float(
        3.0, help="Seconds to wait for the S3 server before reporting it unreachable.",
    ).tag(config=True)


def store_from_settings(settings: StoreSettings, data_dir: str) -> ObjectStore:
    if settings.backend == "s3":
        from .s3 import S3Store

        return S3Store(
            bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url or None,
            prefix=settings.s3_prefix, access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key, region=settings.s3_region,
            path_style=settings.s3_path_style, connect_timeout=settings.s3_connect_timeout,
            server_side_encryption=settings.s3_server_side_encryption,
            sse_kms_key_id=settings.s3_sse_kms_key_id)
    from pathlib import Path

    from .local import LocalStore

    return LocalStore(settings.local_root or Path(data_dir) / "store")
