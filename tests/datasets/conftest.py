import pytest

from tests.datasets.seaweed import SeaweedS3


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """One real SeaweedFS S3 server for the dataset tests (~3 s to start)."""
    s = SeaweedS3(tmp_path_factory.mktemp("seaweed")).start()
    yield s
    s.stop()
