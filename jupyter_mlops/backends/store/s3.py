"""Any S3 (SeaweedFS, MinIO, Ceph RGW, AWS) through boto3, same layout as the local store."""
from __future__ import annotations

import io
import threading

from ...core.errors import NotFound, Unavailable
from .base import ObjectStore, ObjectWriter, StoredObject, object_key, verify


class _BufferWriter(ObjectWriter):
    """Keeps the object in memory while hashing it, then one PUT (atomic in S3) once it
    matches: a wrong upload never reaches the bucket. Objects are bounded by the upload limit."""

    def __init__(self, store: "S3Store", h: str, size: int):
        super().__init__(h, size)
        self.store = store
        self.buf = io.BytesIO()

    def _write(self, data) -> None:
        self.buf.write(data)

    def _commit(self) -> None:
        self.store.ensure_bucket()
        self.buf.seek(0)
        self.store._put(self.hash, self.buf)

    def abort(self) -> None:
        self.buf = io.BytesIO()


class S3Store(ObjectStore):
    def __init__(self, bucket: str, endpoint_url: str | None = None, prefix: str = "",
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 region: str = "us-east-1", path_style: bool = True,
                 connect_timeout: float = 3.0, create_bucket: bool = True,
                 server_side_encryption: str = "", sse_kms_key_id: str = ""):
        import boto3
        from botocore.config import Config

        if not bucket:
            raise Unavailable("the S3 store has no bucket configured (StoreSettings.s3_bucket)")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.create_bucket = create_bucket
        # Server-side encryption asked for on every PUT (StoreSettings.s3_server_side_encryption)
        self.sse = {}
        if server_side_encryption:
            self.sse["ServerSideEncryption"] = server_side_encryption
            if server_side_encryption == "aws:kms" and sse_kms_key_id:
                self.sse["SSEKMSKeyId"] = sse_kms_key_id
        self._bucket_ok = False
        self._lock = threading.Lock()
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(
                s3={"addressing_style": "path" if path_style else "virtual"},
                connect_timeout=connect_timeout, read_timeout=60,
                retries={"max_attempts": 2, "mode": "standard"},
                max_pool_connections=16,
            ),
        )

    def describe(self) -> str:
        return f"S3 bucket {self.bucket!r} at {self.endpoint_url or 'AWS'}"

    def key(self, h: str) -> str:
        return self.prefix + object_key(h)

    def _call(self, fn, *args, **kw):
        """One boto3 call; transport and credential failures become :class:`Unavailable`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kw)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise
            if code in ("403", "Forbidden", "AccessDenied", "InvalidAccessKeyId",
                        "SignatureDoesNotMatch"):
                raise Unavailable(
                    f"{self.describe()} denied access ({code}): check the access key and secret "
                    "(StoreSettings.s3_access_key_id, s3_secret_access_key) and the bucket's "
                    "permissions") from None
            raise Unavailable(f"{self.describe()} refused the request: {code}: "
                              f"{e.response.get('Error', {}).get('Message', '')}") from None
        except BotoCoreError as e:
            raise Unavailable(f"{self.describe()} is unreachable: {e}") from None

    def _is_missing(self, e: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(e, ClientError) and \
            e.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound")

    def ensure_bucket(self) -> None:
        with self._lock:
            if self._bucket_ok:
                return
            try:
                self._call(self.client.head_bucket, Bucket=self.bucket)
            except Exception as e:
                if not (self._is_missing(e) and self.create_bucket):
                    raise
                self._call(self.client.create_bucket, Bucket=self.bucket)
            self._bucket_ok = True

    def exists(self, h: str) -> bool:
        return self.size(h) is not None

    def size(self, h: str) -> int | None:
        try:
            r = self._call(self.client.head_object, Bucket=self.bucket, Key=self.key(h))
        except Exception as e:
            if self._is_missing(e):
                return None
            raise
        return int(r["ContentLength"])

    def missing(self, hashes: list[str]) -> set[str]:
        if len(hashes) <= 100:
            return super().missing(hashes)
        self.ensure_bucket()
        # one listing (1000 keys a page) beats thousands of HEAD requests
        have = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "objects/")
        for page in self._call(lambda: list(pages)):
            for o in page.get("Contents", []):
                rest = o["Key"][len(self.prefix) + len("objects/"):]
                have.add(rest.replace("/", ""))
        return set(hashes) - have

    def _put(self, h: str, body) -> None:
        """One PUT (atomic in S3: the object appears whole or not at all), encrypted by the
        server when configured. Fails closed: a server that stored it without the encryption
        asked for (one that ignores the header) gets the object deleted again and an error."""
        r = self._call(self.client.put_object, Bucket=self.bucket, Key=self.key(h), Body=body,
                       **self.sse)
        asked = self.sse.get("ServerSideEncryption")
        if asked and r.get("ServerSideEncryption") != asked:
            self._call(self.client.delete_object, Bucket=self.bucket, Key=self.key(h))
            raise Unavailable(
                f"{self.describe()} did not apply the server-side encryption asked for "
                f"({asked}; it answered {r.get('ServerSideEncryption') or 'none'}): the "
                "object was not kept. Check the server's encryption (KMS) settings or "
                "StoreSettings.s3_server_side_encryption")

    def put_bytes(self, h: str, data: bytes) -> None:
        verify(h, data, "the upload")
        self.ensure_bucket()
        if self.exists(h):  # checked first, then not rewritten (as in the local store)
            return
        self._put(h, data)

    def put_file(self, h: str, path: str) -> None:
        self.ensure_bucket()
        with open(path, "rb") as f:
            self._put(h, f)

    def writer(self, h: str, size: int) -> ObjectWriter:
        return _BufferWriter(self, h, size)

    def list_objects(self):
        self.ensure_bucket()
        start = len(self.prefix) + len("objects/")
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "objects/")
        for page in self._call(lambda: list(pages)):
            for o in page.get("Contents", []):
                yield StoredObject(o["Key"][start:].replace("/", ""), int(o["Size"]),
                                   o["LastModified"].timestamp())

    def delete(self, hashes: list[str]) -> None:
        for i in range(0, len(hashes), 1000):  # the most one DeleteObjects call takes
            keys = [{"Key": self.key(h)} for h in hashes[i:i + 1000]]
            r = self._call(self.client.delete_objects, Bucket=self.bucket,
                           Delete={"Objects": keys, "Quiet": True})
            if r.get("Errors"):
                e = r["Errors"][0]
                raise Unavailable(f"{self.describe()} did not delete {e.get('Key')}: "
                                  f"{e.get('Code')} {e.get('Message', '')}")

    def clean_partial(self, older_than: float) -> int:
        """Abort multipart uploads under the prefix begun before ``older_than`` (an S3 server
        keeps their parts, unseen and billed, until then). Objects themselves appear whole: a
        PUT is atomic."""
        self.ensure_bucket()
        n = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "objects/")
        for page in self._call(lambda: list(pages)):
            for u in page.get("Uploads", []):
                if u["Initiated"].timestamp() < older_than:
                    self._call(self.client.abort_multipart_upload, Bucket=self.bucket,
                               Key=u["Key"], UploadId=u["UploadId"])
                    n += 1
        return n

    def get_bytes(self, h: str) -> bytes:
        try:
            r = self._call(self.client.get_object, Bucket=self.bucket, Key=self.key(h))
        except Exception as e:
            if self._is_missing(e):
                raise NotFound(f"object {h} is not in the {self.describe()}") from None
            raise
        return verify(h, r["Body"].read(), self.describe())
