import pytest

@pytest.fixture
def jp_server_config(jp_server_config):
    # Like the extension template: every route must authenticate; nothing is allowlisted.
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_mlops": True},
            "allow_unauthenticated_access": False,
        }
    }
