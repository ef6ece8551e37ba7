from tests.fixtures import platform, shared_tmp  # noqa: F401 (fixtures)
