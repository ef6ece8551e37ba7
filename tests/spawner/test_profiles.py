"""The profile model and the small pure helpers of the local spawner."""
import shutil

import pytest
from traitlets import TraitError

from jupyter_mlops_spawner import MlopsLocalSpawner
from jupyter_mlops.backends.accounts import system_username, unreachable_part
from jupyter_mlops_spawner.profiles import Profile
from tests.spawner.hubfixture import shared_tmpdir


def test_profile_from_dict_normalises_and_checks():
    p = Profile.from_dict({"slug": "a100", "gpus": 2, "cpu_limit": "4", "mem_limit": "8G",
                           "allowed_groups": ["dl"], "tolerations": [{"key": "x"}]})
    assert p.display_name == "a100" and p.cpu_limit == 4.0 and p.allowed_groups == ("dl",)
    assert p.resources_text() == "4 CPU, 8GB RAM, 2 GPUs"
    assert p.allows(["dl"], []) and not p.allows(["other"], ["user"])
    assert Profile.from_dict({"slug": "open"}).allows([], [])
    assert Profile.from_dict({"slug": "r", "allowed_roles": ["mlops-admin"]}).allows(
        [], ["mlops-admin"])
    for bad, why in [({"slug": "Bad Slug"}, "slug"), ({"slug": "x", "gpus": -1}, "gpus"),
                     ({"slug": "x", "gpus": True}, "gpus"), ({"slug": "x", "mem_limit": "lots"},
                                                             "mem_limit"),
                     ({"slug": "x", "gpu": 1}, "unknown keys")]:
        with pytest.raises(ValueError, match=why):
            Profile.from_dict(bad)


def test_profiles_trait_refuses_bad_config():
    with pytest.raises(TraitError, match="unique"):
        MlopsLocalSpawner(profiles=[{"slug": "a"}, {"slug": "a"}])
    with pytest.raises(TraitError, match="unknown keys"):
        MlopsLocalSpawner(profiles=[{"slug": "a", "cpus": 2}])


def test_system_usernames_are_valid_and_distinct():
    assert system_username("jm-", "alice") == "jm-alice"
    odd = system_username("jm-", "Alice.Smith@lab.example.org")
    assert len(odd) <= 32 and odd.startswith("jm-alice-smith")
    assert odd != system_username("jm-", "alice.smith@lab.example.org")
    assert all(c.isalnum() or c in "-_" for c in odd)


def test_unreachable_part():
    base = shared_tmpdir("reach")
    try:
        d = base / "a" / "b"
        d.mkdir(parents=True)
        assert unreachable_part(d) is None
        (base / "a").chmod(0o700)
        assert unreachable_part(d) == base / "a"
        (base / "a").chmod(0o701)  # the search bit alone is enough
        assert unreachable_part(d) is None
    finally:
        shutil.rmtree(base)


@pytest.mark.asyncio
async def test_local_gpu_profile_refused_without_allocator():
    from types import SimpleNamespace

    from tornado import web

    sp = MlopsLocalSpawner(user=SimpleNamespace(name="u", groups=[], roles=[]),
                           profiles=[{"slug": "g", "display_name": "GPU", "gpus": 1}])
    sp.user_options = {"profile": "g"}
    with pytest.raises(web.HTTPError) as e:
        await sp.start()
    assert e.value.status_code == 503 and "gpu_api_url is empty" in e.value.jupyterhub_message


def check_profile_form_hooks(sp):
    """The form hooks are the mixin's: neither JupyterHub's nor kubespawner's own defaults."""
    assert sp.options_form == sp.mlops_options_form
    assert sp.options_from_form == sp.mlops_options_from_form
    assert sp.options_from_form({"profile": ["cpu"]}) == {"profile": "cpu"}
    assert sp.apply_user_options(sp, {"profile": "cpu"}) is None


def test_the_local_spawner_offers_the_profile_form():
    check_profile_form_hooks(MlopsLocalSpawner(profiles=[{"slug": "cpu"}]))


@pytest.mark.asyncio
async def test_a_server_found_gone_gives_its_gpus_back(monkeypatch):
    from jupyterhub.spawner import LocalProcessSpawner

    sp = MlopsLocalSpawner(profiles=[{"slug": "cpu"}])
    released = []
    async def release():
        released.append(True)

    monkeypatch.setattr(sp, "release_gpus", release)
    states = iter([None, 1, 1])

    async def spawner_poll(self):
        return next(states)

    monkeypatch.setattr(LocalProcessSpawner, "poll", spawner_poll)
    assert await sp.poll() is None and released == []  # still running
    sp._spawn_pending = True  # a start under way: its GPUs are in use by the new server
    assert await sp.poll() == 1 and released == []
    sp._spawn_pending = False
    assert await sp.poll() == 1 and released == [True]
