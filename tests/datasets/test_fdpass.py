"""Same-machine publishing: descriptors passed to the real control plane over its unix socket."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import blake3
import pytest

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from jupyter_mlops.core import errors
from jupyter_mlops.backends import fdpass
from jupyter_mlops.demo import cells
from tests.fixtures import until

API = "services/mlops/api"


@pytest.fixture(scope="module")
def people(platform):
    platform.add_user("fiona", "fiona-password-1")
    return {"admin": platform.admin_token(), "fiona": platform.token("fiona")}


@pytest.fixture(scope="module")
def sock_path(platform):
    return str(platform.data_dir / "run" / "publish.sock")


def client_for(platform, token, sock):
    return ControlPlane(f"{platform.url}/services/mlops/", token, publish_socket=sock)


def hello(sock_path, token, dataset="fd-raw"):
    s = fdpass.connect(sock_path)
    assert s is not None
    fdpass.send(s, {"op": "hello", "token": token, "dataset": dataset, "project": None})
    return s, fdpass.recv(s)[0]


def test_the_socket_is_reachable_but_its_directory_not_listable(sock_path):
    st_dir, st_sock = os.stat(os.path.dirname(sock_path)), os.stat(sock_path)
    assert stat.S_IMODE(st_dir.st_mode) == 0o711
    assert stat.S_ISSOCK(st_sock.st_mode) and stat.S_IMODE(st_sock.st_mode) == 0o666


def test_a_socket_publish_stores_what_http_would(platform, people, sock_path, tmp_path,
                                                 monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "fd-cells"
    cells.generate(root, n_images=12, seed=31, fmt="mixed", width=80, height=80)
    fast = client_for(platform, people["fiona"], sock_path)
    steps = []
    v = datasets.publish(root, "fd-cells", split={"seed": 3}, client=fast,
                         progress=lambda *a: steps.append(a))
    assert v["transfer"]["path"] == "socket"
    assert v["transfer"]["uploaded"] == v["transfer"]["objects"] > 12
    assert ("storing", v["transfer"]["uploaded"], v["transfer"]["uploaded"],
            v["transfer"]["uploaded_bytes"]) in steps  # the panel's bar reaches the end
    # the same folder over HTTP: the same manifest, and nothing left to send
    slow = client_for(platform, people["fiona"], "")
    w = datasets.publish(root, "fd-cells-http", split={"seed": 3}, client=slow)
    assert w["transfer"]["path"] == "http" and w["transfer"]["uploaded"] == 0
    assert w["manifest_id"] == v["manifest_id"]
    # every stored object is checked against its hash on the way out
    got = datasets.get("fd-cells", client=fast)
    for f in root.rglob("*"):
        if f.is_file():
            assert (got / f.relative_to(root)).read_bytes() == f.read_bytes()


def test_only_regular_files_are_read(platform, people, sock_path, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    opened = {
        "directory": os.open(tmp_path, os.O_RDONLY),
        "fifo": os.open(fifo, os.O_RDONLY | os.O_NONBLOCK),
        "device": os.open("/dev/zero", os.O_RDONLY),
    }
    try:
        for (what, fd), op in [(o, op) for o in opened.items() for op in ("objects", "ingest")]:
            s, ok = hello(sock_path, people["fiona"])
            assert ok["ok"], ok
            item = {"hash": "a" * 64, "size": 0} if op == "objects" else {"size": 0}
            fdpass.send(s, {"op": op, "items": [item]}, [fd])
            reply = fdpass.recv(s)[0]
            assert reply["status"] == 400 and "not a regular file" in reply["message"], (what, op)
            assert fdpass.recv(s)[0] is None  # a refusal ends the conversation
            s.close()
        # a regular file is hashed while copied: the answer is its content's hash
        f = tmp_path / "plain.bin"
        f.write_bytes(b"counted once")
        s, _ = hello(sock_path, people["fiona"])
        fd = os.open(f, os.O_RDONLY)
        try:
            fdpass.send(s, {"op": "ingest", "items": [{"size": f.stat().st_size}]}, [fd])
        finally:
            os.close(fd)
        reply = fdpass.recv(s)[0]
        assert reply["hashes"] == [blake3.blake3(b"counted once").hexdigest()], reply
        s.close()
    finally:
        fdpass.close_all(opened.values())


def test_content_must_match_its_hash_and_each_object_needs_its_descriptor(
        platform, people, sock_path, tmp_path):
    f = tmp_path / "lie.bin"
    f.write_bytes(b"not what it claims")
    claimed = blake3.blake3(b"something else").hexdigest()
    s, _ = hello(sock_path, people["fiona"])
    fd = os.open(f, os.O_RDONLY)
    fdpass.send(s, {"op": "objects", "items": [{"hash": claimed, "size": 18}]}, [fd])
    os.close(fd)
    reply = fdpass.recv(s)[0]
    assert reply["status"] == 400 and "does not match" in reply["message"]
    s.close()
    r = platform.api("POST", f"{API}/dataset-objects/missing", people["fiona"],
                     json={"hashes": [claimed]})
    assert r.json()["missing"] == [claimed]  # never stored under the false name
    # naming a path instead of passing a descriptor gets nothing read
    s, _ = hello(sock_path, people["fiona"])
    fdpass.send(s, {"op": "objects", "items": [{"hash": claimed, "size": 18,
                                                "path": "/etc/shadow"}]})
    reply = fdpass.recv(s)[0]
    assert reply["status"] == 400 and "each object needs its descriptor" in reply["message"]
    s.close()
    # An object the store holds already (another project's): a lie is refused all the same,
    # and the true bytes count as new to fiona, as for an object nobody stored
    from jupyter_mlops.backends.store import LocalStore

    LocalStore(platform.data_dir / "store").put_bytes(claimed, b"something else")
    for content, answer in ((b"not what it claims", None), (b"something else", 1)):
        f.write_bytes(content)
        s, _ = hello(sock_path, people["fiona"])
        fd = os.open(f, os.O_RDONLY)
        fdpass.send(s, {"op": "objects", "items": [{"hash": claimed, "size": len(content)}]},
                    [fd])
        os.close(fd)
        reply = fdpass.recv(s)[0]
        s.close()
        if answer is None:
            assert reply["status"] == 400 and "does not match" in reply["message"], reply
        else:
            assert reply == {"ok": True, "stored": 1, "bytes": len(content)}, reply


def test_a_wrong_token_or_no_membership_is_refused(platform, people, sock_path, tmp_path):
    s, reply = hello(sock_path, "not-a-token")
    assert not reply["ok"] and reply["status"] == 401
    s.close()
    pub = fdpass.FdPublisher(sock_path, "not-a-token", "fd-x", None, None)
    with pytest.raises(errors.NotAuthenticated, match="did not accept"):
        pub.open()
    # descriptors before the hello are refused (and closed)
    s = fdpass.connect(sock_path)
    fd = os.open(tmp_path, os.O_RDONLY)
    fdpass.send(s, {"op": "objects", "items": []}, [fd])
    os.close(fd)
    assert fdpass.recv(s)[0]["status"] == 401
    s.close()
    # the publish-check of HTTP: a project fiona is not in
    pub = fdpass.FdPublisher(sock_path, people["fiona"], "fd-y", "no-such-project", None)
    with pytest.raises(errors.Forbidden, match="not a member"):
        pub.open()


def test_a_user_holds_a_bounded_number_of_connections_then_publishes_over_http(
        platform, people, sock_path, tmp_path, monkeypatch):
    """Each connection holds a control plane thread: 16 per user (the default), then "busy",
    and the publisher sends over HTTP instead. Other users are not affected."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    platform.add_user("gus", "gus-password-1")
    gus = platform.token("gus")
    held = [hello(sock_path, gus, "fd-busy") for _ in range(16)]
    try:
        assert all(reply["ok"] for _, reply in held)
        s, reply = hello(sock_path, gus, "fd-busy")
        s.close()
        assert not reply["ok"] and reply.get("busy") and reply["status"] == 503
        assert "gus already has 16 publishing connections open" in reply["message"]
        # fiona's own publishing is untouched
        s, reply = hello(sock_path, people["fiona"], "fd-busy")
        s.close()
        assert reply["ok"]
        # gus's publish still works: over HTTP, with the same result
        root = tmp_path / "busy"
        cells.generate(root, n_images=3, seed=8, width=48, height=48)
        v = datasets.publish(root, "fd-busy", client=client_for(platform, gus, sock_path))
        assert v["transfer"]["path"] == "http" and v["version"] == "v1"
    finally:
        for s, _ in held:
            s.close()
    # slots come back when connections end (the server notices the close at once)
    def greeted():
        s, reply = hello(sock_path, gus, "fd-busy")
        s.close()
        return reply["ok"] and reply

    until(greeted, 10, "a free slot", every=0.1)
    # a publisher whose later connections find the socket busy sends those batches over HTTP
    pub = fdpass.FdPublisher(sock_path, gus, "fd-busy", None,
                             client_for(platform, gus, ""))
    assert pub.open()
    held = [hello(sock_path, gus, "fd-busy") for _ in range(15)]
    try:
        f = tmp_path / "one.bin"
        f.write_bytes(b"one object over two paths" * 100)
        h = blake3.blake3(f.read_bytes()).hexdigest()
        first = pub._sock()  # the idle authenticated connection: the 16th slot
        assert first is not None
        assert pub.put_batch([(h, str(f), f.stat().st_size)])["stored"] == 1
        assert pub.http_batches == 1
        pub._release(first)
    finally:
        for s, _ in held:
            s.close()
        first.close()


def test_the_control_plane_reads_only_what_the_user_could_open(platform, people, sock_path,
                                                                shared_tmp):
    """The publisher runs as another account (nobody) than the file's owner: opening fails
    in the publisher, and nothing in the protocol lets it name the file instead."""
    tmp_path = shared_tmp  # traversable by other accounts, unlike pytest's tmp_path
    secret = tmp_path / "secret.tif"
    secret.write_bytes(b"root only" * 100)
    secret.chmod(0o600)
    public = tmp_path / "public.tif"
    public.write_bytes(b"anyone may read" * 100)
    public.chmod(0o644)
    h_secret = blake3.blake3(secret.read_bytes()).hexdigest()
    h_public = blake3.blake3(public.read_bytes()).hexdigest()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, then publish the two files
        os.close(r)
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            pub = fdpass.FdPublisher(sock_path, people["fiona"], "fd-nobody", None, None)
            assert pub.open()
            out = [str(pub.put_batch([(h_public, str(public), public.stat().st_size)]))]
            try:
                pub.put_batch([(h_secret, str(secret), secret.stat().st_size)])
                out.append("secret sent")
            except errors.InvalidInput as e:
                out.append(e.message)
            os.write(w, "\n".join(out).encode())
            code = 0
        except BaseException as e:  # noqa: BLE001 (reported to the parent)
            os.write(w, repr(e).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        report = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    lines = report.splitlines()
    assert lines[0] == str({"stored": 1, "bytes": 1500})
    assert lines[1] == "cannot open secret.tif: Permission denied"
    missing = platform.api("POST", f"{API}/dataset-objects/missing", people["fiona"],
                           json={"hashes": [h_secret, h_public]}).json()["missing"]
    assert missing == [h_secret]


def test_no_socket_falls_back_to_http(platform, people, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "fb"
    cells.generate(root, n_images=3, seed=57, width=48, height=48)
    stale = tmp_path / "stale.sock"  # a socket file nobody listens on (a dead control plane)
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.bind(str(stale))
    for i, path in enumerate([str(tmp_path / "absent" / "publish.sock"), str(stale)]):
        v = datasets.publish(root, f"fd-fallback-{i}", client=client_for(
            platform, people["fiona"], path))
        assert v["transfer"]["path"] == "http" and v["version"] == "v1"
    # from the environment the spawner sets, as in a user server
    monkeypatch.setenv(fdpass.SOCKET_ENV, str(tmp_path / "absent.sock"))
    c = ControlPlane(f"{platform.url}/services/mlops/", people["fiona"])
    assert c.publish_socket.endswith("absent.sock") and c.object_sink("fd-z") is c


KILLED = textwrap.dedent("""
    import sys, time
    from jupyter_mlops import datasets
    from jupyter_mlops.client import ControlPlane
    from jupyter_mlops.backends import fdpass
    from jupyter_mlops.core.datasets import folder
    real = fdpass.FdPublisher.ingest_batch  # one pass: hashed while copied, a few per call
    def slow(self, items):
        out = real(self, items)
        print("sent", flush=True)
        time.sleep(0.5)
        return out
    fdpass.FdPublisher.ingest_batch = slow
    c = ControlPlane(sys.argv[2], sys.argv[3], publish_socket=sys.argv[4])
    datasets.publish(sys.argv[1], "fd-killed", client=c)
""")


def test_a_killed_socket_publish_leaves_no_version(platform, people, sock_path, tmp_path,
                                                   monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-parent"))
    root = tmp_path / "k"
    cells.generate(root, n_images=16, seed=8, width=64, height=64)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(root),
                             f"{platform.url}/services/mlops/", people["fiona"], sock_path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    while lines.count("sent\n") < 2:
        line = proc.stdout.readline()
        assert line, "the publishing process ended early:\n" + "".join(lines)
        lines.append(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = platform.api("GET", f"{API}/datasets/fd-killed", people["fiona"])
    assert r.status_code == 404  # nothing recorded
    tmp = platform.data_dir / "store" / "tmp"
    # no half-written object left behind
    until(lambda: not any(tmp.iterdir()), 10, "the object in flight to be dropped", every=0.1)
    v = datasets.publish(root, "fd-killed", client=client_for(platform, people["fiona"],
                                                              sock_path))
    assert v["version"] == "v1" and v["transfer"]["path"] == "socket"
    assert 0 < v["transfer"]["uploaded"] < v["transfer"]["objects"]  # the first batches stayed
