"""The S3 store asks for server-side encryption (SSE-S3, SSE-KMS by key id), against a real
SeaweedFS with encryption enabled; a server that does not apply it loses no plaintext object."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import blake3
import pytest

from jupyter_mlops.backends.store import S3Store
from jupyter_mlops.backends.store.config import StoreSettings, store_from_settings
from jupyter_mlops.core.errors import Unavailable
from tests.datasets.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3


@pytest.fixture(scope="module")
def encrypting(tmp_path_factory):
    s = SeaweedS3(tmp_path_factory.mktemp("seaweed-sse"), encryption=True).start()
    yield s
    s.stop()


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def on_disk(server: SeaweedS3, needle: bytes) -> bool:
    """Whether ``needle`` appears in clear in any file of the server's data directory."""
    for root, _, files in os.walk(server.dir / "data"):
        for name in files:
            if needle in (Path(root) / name).read_bytes():
                return True
    return False


def store(server, **sse) -> S3Store:
    return S3Store("mlops-sse", server.endpoint, prefix=f"t-{uuid.uuid4().hex[:8]}/",
                   access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, **sse)


@pytest.mark.parametrize("sse", [{"server_side_encryption": "AES256"},
                                 {"server_side_encryption": "aws:kms",
                                  "sse_kms_key_id": "lab-datasets"}])
def test_objects_are_encrypted_at_rest_and_read_back(encrypting, sse):
    s = store(encrypting, **sse)
    # Given two objects, one put whole and one streamed through the writer
    # (random bytes: the server compresses compressible data, which would hide it from the
    # at-rest check below)
    a, b = os.urandom(4096), os.urandom(4096)
    s.put_bytes(h(a), a)
    w = s.writer(h(b), len(b))
    w.write(b)
    w.commit()
    # Then the server records the encryption asked for, on each
    for data in (a, b):
        head = s.client.head_object(Bucket=s.bucket, Key=s.key(h(data)))
        assert head["ServerSideEncryption"] == sse["server_side_encryption"]
        if "sse_kms_key_id" in sse:
            assert head["SSEKMSKeyId"].endswith("lab-datasets")
        # and the bytes read back are the same, while none lies in clear on the server's disk
        assert s.get_bytes(h(data)) == data
        assert not on_disk(encrypting, data)
    # (the same check finds an object stored without encryption: it does look)
    plain = os.urandom(4096)
    store(encrypting).put_bytes(h(plain), plain)
    assert on_disk(encrypting, plain)


def test_the_settings_reach_the_store(encrypting):
    settings = StoreSettings(backend="s3", s3_endpoint_url=encrypting.endpoint,
                             s3_bucket="mlops-sse", s3_access_key_id=ACCESS_KEY,
                             s3_secret_access_key=SECRET_KEY,
                             s3_server_side_encryption="aws:kms",
                             s3_sse_kms_key_id="lab-datasets")
    s = store_from_settings(settings, "/nonexistent")
    data = b"via settings " + uuid.uuid4().hex.encode()
    s.put_bytes(h(data), data)
    head = s.client.head_object(Bucket=s.bucket, Key=s.key(h(data)))
    assert head["ServerSideEncryption"] == "aws:kms"


def test_a_server_that_cannot_encrypt_keeps_nothing(seaweed):
    # Given a SeaweedFS without any KMS, asked for SSE-KMS
    s = store(seaweed, server_side_encryption="aws:kms", sse_kms_key_id="lab-datasets")
    data = b"must not be stored in clear " + uuid.uuid4().hex.encode()
    # Then the write fails with the server's reason and no object exists
    with pytest.raises(Unavailable) as e:
        s.put_bytes(h(data), data)
    assert "S3 bucket 'mlops-sse'" in str(e.value)
    assert not s.exists(h(data))
