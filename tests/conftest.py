from tests.fixtures import platform  # noqa: F401 (a fixture)
