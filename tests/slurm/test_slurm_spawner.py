"""MlopsSlurmSpawner: a profile becomes the server's batch script, which real Slurm accepts."""
from __future__ import annotations

import subprocess

import pytest
from jupyterhub.objects import Hub, Server
from traitlets.config import Config

from jupyter_mlops_spawner.profiles import Profile
from jupyter_mlops_spawner.slurm import MlopsSlurmSpawner, slurm_request
from tests.spawner.kube_helpers import StubUser


def make_spawner(user: str, root, profile: str, groups=()) -> MlopsSlurmSpawner:
    c = Config()
    c.MlopsSlurmSpawner.workspace_root = f"{root}/users"
    c.MlopsSlurmSpawner.shared_dataset_dir = f"{root}/datasets"
    c.MlopsSlurmSpawner.req_partition = "gpu"
    c.MlopsSlurmSpawner.req_runtime = "8:00:00"
    c.MlopsSlurmSpawner.profiles = [
        {"slug": "cpu", "display_name": "CPU only", "default": True, "cpu_limit": 2,
         "mem_limit": "4G"},
        {"slug": "a100-2", "display_name": "2 x A100", "gpus": 2, "gpu_type": "A100",
         "cpu_limit": 1.5, "mem_limit": "1G", "allowed_groups": ["deep-learning"]},
    ]
    sp = MlopsSlurmSpawner(hub=Hub(), user=StubUser(user, groups), config=c,
                           api_token="secret-token", oauth_client_id=f"jupyterhub-user-{user}")
    sp.server = Server(ip="127.0.0.1", port=8888, base_url=f"/user/{user}/")
    sp.user_options = {"profile": profile}
    return sp


async def batch_script(sp: MlopsSlurmSpawner) -> str:
    """What ``submit_batch_script`` hands to sbatch."""
    sp.apply_profile(sp.chosen_profile())
    subvars = sp.get_req_subvars()
    subvars["cmd"] = sp.cmd_formatted_for_batch()
    return await sp._get_batch_script(**subvars)


def test_profile_to_slurm_request():
    gpu = Profile.from_dict({"slug": "g", "gpus": 2, "gpu_type": "A100", "cpu_limit": 3.5,
                             "mem_limit": "32G"})
    assert slurm_request(gpu) == {"gres": "gpu:a100:2", "nprocs": "4", "memory": "32G"}
    assert slurm_request(gpu, gres_types={"A100": "a100_80g"})["gres"] == "gpu:a100_80g:2"
    assert slurm_request(Profile.from_dict({"slug": "any", "gpus": 1}))["gres"] == "gpu:1"
    assert slurm_request(Profile.from_dict({"slug": "c"})) == {"gres": "", "nprocs": "",
                                                                  "memory": ""}


@pytest.mark.asyncio
async def test_gpu_profile_batch_script_is_accepted_by_slurm(slurm_cluster, shared_tmp):
    sp = make_spawner("sena", shared_tmp, "a100-2", groups=["deep-learning"])
    script = await batch_script(sp)
    lines = script.splitlines()
    home = f"{shared_tmp}/users/sena"
    for expected in ("#SBATCH --gres=gpu:a100:2", "#SBATCH --cpus-per-task=2",
                     "#SBATCH --mem=1G", "#SBATCH --partition=gpu", "#SBATCH --time=8:00:00",
                     f"#SBATCH --chdir={home}",
                     f"#SBATCH --output={home}/jupyterhub_slurmspawner_%j.log"):
        assert expected in lines, script
    export = next(line for line in lines if line.startswith("#SBATCH --export="))
    assert "JUPYTER_MLOPS_DATASETS" in export and "JUPYTERHUB_API_TOKEN" in export
    env = sp.get_env()
    assert env["JUPYTER_MLOPS_DATASETS"] == f"{shared_tmp}/datasets"
    assert env["JUPYTER_MLOPS_PROFILE"] == "a100-2"
    assert "batchspawner-singleuser jupyterhub-singleuser" in script
    # run as the user's account, the one the local backends use
    assert sp.req_username == "jm-sena"
    assert sp.exec_prefix.format(username=sp.req_username) == "runuser -u jm-sena --"
    # Slurm itself accepts the request (2 GRES GPUs of type a100 exist): --test-only checks
    # the script and finds when it would start, without submitting it
    r = subprocess.run(["sbatch", "--test-only"], input=script, text=True, capture_output=True,
                       env=slurm_cluster.env)
    assert r.returncode == 0 and "to start at" in r.stderr, r.stderr
    # a request the cluster cannot ever meet is refused by Slurm in its own words
    r = subprocess.run(["sbatch", "--test-only"], input=script.replace(
        "gpu:a100:2", "gpu:a100:3"), text=True, capture_output=True, env=slurm_cluster.env)
    assert r.returncode != 0 and "Requested node configuration is not available" in r.stderr


@pytest.mark.asyncio
async def test_cpu_profile_asks_for_no_gpu_and_refused_profiles_stay_refused(shared_tmp):
    cpu = make_spawner("sena", shared_tmp, "cpu")
    script = await batch_script(cpu)
    assert "--gres" not in script and "#SBATCH --cpus-per-task=2" in script.splitlines()
    # the server is told its profile: the lab's status check then says "CPU profile: no GPU
    # requested" rather than a red "no GPU" (Slurm sets no device variable for no GRES)
    assert cpu.get_env()["JUPYTER_MLOPS_PROFILE"] == "cpu"
    sp = make_spawner("sena", shared_tmp, "a100-2")  # not in deep-learning
    with pytest.raises(Exception) as e:
        await sp.start()
    assert getattr(e.value, "status_code", None) == 403, e.value
    assert sp.job_id == ""  # nothing reached Slurm
