import uuid

import pytest

from jupyter_mlops.backends.store import LocalStore, S3Store
from tests.datasets.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """One real SeaweedFS S3 server for the dataset tests (~3 s to start)."""
    s = SeaweedS3(tmp_path_factory.mktemp("seaweed")).start()
    yield s
    s.stop()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """An empty object store: a local directory, then a prefix of its own on SeaweedFS."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3 = request.getfixturevalue("seaweed")
    # one bucket (each bucket is a SeaweedFS collection with volumes of its own), a prefix each
    module = request.module.__name__.rsplit(".", 1)[-1]
    return S3Store("mlops-tests", s3.endpoint, prefix=f"{module}-{uuid.uuid4().hex[:10]}/",
                   access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
