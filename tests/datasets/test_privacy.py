"""A private project's datasets on a real platform: who reads them (API and disk), who changes
them, and what the owner sees of changes made by others.

People: mona (project manager, creates project ``vault`` with pia and quinn in it), pia (owns
dataset ``vault-cells``), quinn (member, not the owner), rex (not a member).
"""
from __future__ import annotations

import os
import subprocess

import blake3
import pytest

from jupyter_mlops.backends.accounts import ensure_account, system_username
from jupyter_mlops.core.datasets import transfer
from tests.fixtures import shared_tmp_dir

API = "services/mlops/api"
PASSWORD = "privacy-pass-1"
PROJECT = "vault"
DATASET = "vault-cells"


@pytest.fixture(scope="module")
def people(platform):
    platform.add_user("mona", PASSWORD, groups=["mlops-pms"])
    for u in ("pia", "quinn", "rex"):
        platform.add_user(u, PASSWORD)
    tokens = {u: platform.token(u) for u in ("mona", "pia", "quinn", "rex")}
    r = platform.api("POST", f"{API}/projects", tokens["mona"],
                     json={"name": PROJECT, "members": ["pia", "quinn"]})
    assert r.status_code in (201, 409), r.text
    return tokens


def _object(platform, token, data: bytes) -> dict:
    h = blake3.blake3(data).hexdigest()
    r = platform.api("PUT", f"{API}/dataset-objects/{h}", token, data=data)
    assert r.status_code == 201, r.text
    return {"path": f"{h[:8]}.txt", "size": len(data), "hash": h, "kind": "file"}


def _version(platform, token, name, files, project=None):
    body = {"manifest": {"files": files}, "message": "test"}
    if project:
        body["project"] = project
    return platform.api("POST", f"{API}/datasets/{name}/versions", token, json=body)


@pytest.fixture(scope="module")
def vault(platform, people):
    """pia's dataset in the private project, with one object no other dataset names."""
    entry = _object(platform, people["pia"], b"private cell counts " + os.urandom(8))
    r = _version(platform, people["pia"], DATASET, [entry], PROJECT)
    assert r.status_code == 201, r.text
    return entry


def test_objects_of_a_private_dataset_reach_members_only(platform, people, vault):
    h = vault["hash"]
    # Given quinn (a member) and rex (not a member) ask for the same valid object
    for who in ("quinn", "pia", "mona"):
        r = platform.api("GET", f"{API}/dataset-objects/{h}", people[who])
        assert r.status_code == 200, (who, r.text)
    r = platform.api("GET", f"{API}/dataset-objects/{h}", people["rex"])
    # Then rex is told what an absent object answers
    assert r.status_code == 404, r.text
    absent = platform.api("GET", f"{API}/dataset-objects/{'e' * 64}", people["rex"])
    assert absent.status_code == 404 and r.json()["error"] == absent.json()["error"]
    assert platform.api("GET", f"{API}/dataset-objects/{h}/thumbnail",
                        people["rex"]).status_code == 404
    # and the catalog does not show him the dataset at all
    assert platform.api("GET", f"{API}/datasets/{DATASET}", people["rex"]).status_code == 404
    assert platform.api("GET", f"{API}/datasets/{DATASET}/versions/v1/manifest",
                        people["rex"]).status_code == 404
    names = [d["name"] for d in platform.api("GET", f"{API}/datasets",
                                             people["rex"]).json()["datasets"]]
    assert DATASET not in names
    assert DATASET in [d["name"] for d in platform.api("GET", f"{API}/datasets",
                                                       people["quinn"]).json()["datasets"]]


def test_upload_answers_do_not_tell_whether_another_project_holds_the_bytes(platform, people):
    """rex holds the same bytes as an object of pia's private dataset: every upload answer he
    gets is the one an object nobody stored gets."""
    private = b"vault cell image " + os.urandom(8)
    h = _object(platform, people["pia"], private)["hash"]
    r = _version(platform, people["pia"], "vault-oracle",
                 [{"path": "a.txt", "size": len(private), "hash": h, "kind": "file"}], PROJECT)
    assert r.status_code == 201, r.text
    unknown = b"nobody stored this " + os.urandom(8)
    u = blake3.blake3(unknown).hexdigest()

    def missing(who, hashes):
        r = platform.api("POST", f"{API}/dataset-objects/missing", people[who],
                         json={"hashes": hashes})
        assert r.status_code == 200, r.text
        return r.json()["missing"]

    # Given the stored hash and an unknown one, rex is told to send both
    assert missing("rex", [h, u]) == sorted([h, u])
    assert missing("quinn", [h]) == []  # a member may know it is there
    # and a version naming the stored hash is refused to him as for the unknown one
    for x in (h, u):
        r = _version(platform, people["rex"], "rex-probe",
                     [{"path": "a.txt", "size": len(private), "hash": x, "kind": "file"}])
        assert r.status_code == 409, r.text
    # Wrong bytes are checked and refused alike
    wrong = [platform.api("PUT", f"{API}/dataset-objects/{x}", people["rex"], data=b"lie")
             for x in (h, u)]
    assert [r.status_code for r in wrong] == [400, 400]
    assert wrong[0].json()["message"].replace(h, u) == wrong[1].json()["message"]
    # The right bytes get the same status and body (single and batched)
    for x, data in ((h, private), (u, unknown)):
        r = platform.api("PUT", f"{API}/dataset-objects/{x}", people["rex"], data=data)
        assert (r.status_code, r.json()) == (201, {"hash": x, "stored": True})
        r = platform.api("POST", f"{API}/dataset-objects/batch", people["rex"],
                         data=transfer.frame_header(x, len(data)) + data)
        assert (r.status_code, r.json()) == (201, {"stored": 1, "bytes": len(data)})
    # Having sent them, rex need not send them again, yet may not read pia's object
    assert missing("rex", [h, u]) == []
    assert platform.api("GET", f"{API}/dataset-objects/{h}", people["rex"]).status_code == 404
    # and the uploader's own record serves her retry: sent, not published, not asked again
    pending = b"pia's next image " + os.urandom(8)
    p = _object(platform, people["pia"], pending)["hash"]
    assert missing("pia", [p]) == [] and missing("quinn", [p]) == [p]


def test_objects_of_the_default_catalog_stay_readable_by_all(platform, people):
    entry = _object(platform, people["pia"], b"shared cell counts " + os.urandom(8))
    r = _version(platform, people["pia"], "open-cells", [entry])
    assert r.status_code == 201, r.text
    r = platform.api("GET", f"{API}/dataset-objects/{entry['hash']}", people["rex"])
    assert r.status_code == 200
    # and its version is in the shared root user servers read in place
    assert (platform.data_dir / "datasets" / "open-cells" / "v1" / entry["path"]).exists()


def test_another_account_cannot_read_a_private_object_on_disk(platform, vault):
    assert os.geteuid() == 0, "reading as another account needs root (CI runs as root)"
    h = vault["hash"]
    stored = platform.data_dir / "store" / "objects" / h[:2] / h[2:]
    assert stored.is_file()
    # the private version is not in the shared root every account can read
    assert not (platform.data_dir / "datasets" / DATASET).exists()
    home = shared_tmp_dir("mlops-rex-")
    rex = ensure_account(system_username("jm-", "rex"), home / "rex", "rex")
    probe = ("import sys\ntry:\n    open(sys.argv[1], 'rb').read()\n    print('READ')\n"
             "except PermissionError:\n    print('PermissionError')\n")
    out = subprocess.run(["/usr/bin/python3", "-c", probe, str(stored)], capture_output=True,
                         text=True, timeout=30, user=rex.uid, group=rex.gid, extra_groups=[],
                         cwd="/")
    assert out.stdout.strip() == "PermissionError", (out.stdout, out.stderr)


def test_a_member_cannot_change_the_owners_dataset_unless_allowed(platform, people, vault):
    quinn, mona = people["quinn"], people["mona"]
    mine = _object(platform, quinn, b"quinn's only file " + os.urandom(8))
    # a new version, a tag move and a delete by quinn are refused, with the reason
    for r in (_version(platform, quinn, DATASET, [mine]),
              platform.api("PUT", f"{API}/datasets/{DATASET}/tags/reviewed", quinn,
                           json={"version": "v1"}),
              platform.api("DELETE", f"{API}/datasets/{DATASET}", quinn)):
        assert r.status_code == 403, r.text
        assert "belongs to pia" in r.json()["message"], r.text
    detail = platform.api("GET", f"{API}/datasets/{DATASET}", quinn).json()
    assert detail["can_change"] is False and len(detail["versions"]) == 1
    # the project manager may move a tag
    r = platform.api("PUT", f"{API}/datasets/{DATASET}/tags/reviewed", mona,
                     json={"version": "v1"})
    assert r.status_code == 200, r.text
    # once the project lets members change each other's work, quinn may publish
    r = platform.api("PATCH", f"{API}/projects/{PROJECT}", quinn,
                     json={"members_change_others_work": True})
    assert r.status_code == 403  # a member does not decide it
    r = platform.api("PATCH", f"{API}/projects/{PROJECT}", mona,
                     json={"members_change_others_work": True})
    assert r.status_code == 200 and r.json()["members_change_others_work"] is True, r.text
    try:
        r = _version(platform, quinn, DATASET, [mine])
        assert r.status_code == 201, r.text
    finally:
        platform.api("PATCH", f"{API}/projects/{PROJECT}", mona,
                     json={"members_change_others_work": False})
    # and pia, the owner, sees who did what to her dataset
    events = platform.api("GET", f"{API}/datasets/{DATASET}/events", people["pia"]).json()[
        "events"]
    by_others = [(e["actor"], e["action"]) for e in events if e["by_other"]]
    assert by_others == [("mona", "tagged"), ("quinn", "published")], events
    assert [e["action"] for e in events if not e["by_other"]] == ["created", "published"]
    assert platform.api("GET", f"{API}/datasets/{DATASET}/events",
                        people["rex"]).status_code == 404


def test_the_owner_deletes_and_the_name_is_free_again(platform, people):
    pia = people["pia"]
    entry = _object(platform, pia, b"short-lived " + os.urandom(8))
    assert _version(platform, pia, "vault-scratch", [entry], PROJECT).status_code == 201
    r = platform.api("DELETE", f"{API}/datasets/vault-scratch", pia)
    assert r.status_code == 204, r.text
    assert platform.api("GET", f"{API}/datasets/vault-scratch", pia).status_code == 404
    # its object is no longer served (no dataset names it)
    assert platform.api("GET", f"{API}/dataset-objects/{entry['hash']}",
                        pia).status_code == 404
