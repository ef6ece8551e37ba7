"""The deployments' state machine: create, switch, approve or reject, roll out, drain, delete,
authorise endpoint calls and take running servers over after a restart (overview in the
package's docstring)."""
from __future__ import annotations

import asyncio
import json
import logging

import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from ..projects import DEFAULT_PROJECT, Projects
from ..roles import Caller
from .approvals import ApprovalPolicies
from .history import DeploymentHistory
from .model import (NAME_RE, SCHEMA, VISIBILITIES, DeployBackend, ModelResolver, Route, Traffic,
                    record_event, route_for)
from .supervision import Supervisor
from .tokens import EndpointTokens

log = logging.getLogger("jupyter_mlops.deployments")


class Deployments:
    def __init__(self, db: Database, projects: Projects, backend: DeployBackend,
                 resolver: ModelResolver, drain_timeout: float = 30.0):
        self.db = db
        self.projects = projects
        self.backend = backend
        self.resolver = resolver
        self.drain_timeout = drain_timeout
        self.routes: dict[str, Route] = {}
        self.traffic: dict[str, Traffic] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        # Backends whose servers this process runs (local) are supervised here; Kubernetes
        # restarts its own pods.
        supervision = getattr(backend, "supervision", None)
        self.supervisor = Supervisor(self, supervision()) if supervision else None
        # A backend that knows why a starting version's servers wait (a Kubernetes pod the
        # cluster cannot schedule) says so in the deployment's message meanwhile.
        if hasattr(backend, "on_waiting"):
            backend.on_waiting = self._waiting
        db.migrate("deployments", SCHEMA)
        self.policies = ApprovalPolicies(db, projects)
        self.endpoint_tokens = EndpointTokens(db)
        self.history = DeploymentHistory(db)
        # callbacks(row, actor, action, version, reason) after a change is stored: the lab's
        # notifications (core.notices) tell the owner and the approvers
        self.on_event: list = []

    def _announce(self, row: dict, actor: str, action: str, version: str,
                  reason: str = "") -> None:
        for cb in self.on_event:
            try:
                cb(row, actor, action, version, reason)
            except Exception:  # what happened is stored; only the telling failed
                log.exception("deployment %s: announcing %s failed", row["name"], action)

    def _waiting(self, name: str, version: str, reason: str) -> None:
        row = self._row(name)
        if row and row["model_version"] == version and row["status"] in ("starting",
                                                                          "updating"):
            message = f"version {version} waits: {reason}" if reason else ""
            if row["message"] != message:
                self._update(name, message=message)

    # --- reading -----------------------------------------------------------------------------

    def _row(self, name: str) -> dict | None:
        rows = self.db.query("SELECT * FROM deployments WHERE name = :n", n=name)
        return rows[0] if rows else None

    def recent(self, project: str | None = None, limit: int | None = None) -> list[dict]:
        """Deployments (of one project, or all), the last changed first: name, project,
        model_name, model_version, status, created_by, updated_at. For views that already
        checked who may see them (project progress, the admin page)."""
        sql = ("SELECT name, project, model_name, model_version, status, created_by, updated_at"
               " FROM deployments")
        if project is not None:
            sql += " WHERE project = :p"
        sql += " ORDER BY updated_at DESC"
        if limit is not None:
            sql += " LIMIT :n"
        return self.db.query(sql, p=project, n=limit)

    def _public(self, row: dict) -> dict:
        inst = json.loads(row["instance"]) if row["instance"] else None
        return {
            "name": row["name"],
            "project": row["project"],
            "model_name": row["model_name"],
            "model_version": row["model_version"],
            "serving_version": row["serving_version"],
            "status": row["status"],
            "message": row["message"],
            "log": row["log"],
            "visibility": row["visibility"],
            "replicas": self.backend.replicas(inst) if inst and (
                self.supervisor is None or self.supervisor.serving(row["name"])) else 0,
            "server": self.supervisor.state(row["name"]) if self.supervisor else None,
            "endpoint": f"endpoints/{row['name']}/invocations",
            "created_by": row["created_by"],
            "created_at": row["created_at"],
            "updated_by": row["updated_by"],
            "updated_at": row["updated_at"],
            "traffic": self.traffic.get(row["name"], Traffic()).summary(),
        }

    def _visible(self, caller: Caller, row: dict) -> bool:
        try:
            self.projects.require_member(caller, row["project"])
            return True
        except NotFound:
            return False

    def _for(self, caller: Caller, row: dict) -> dict:
        out = self._public(row)
        out["can_approve"] = row["status"] == "pending_approval" and self._manages(caller, row)
        return out

    def _manages(self, caller: Caller, row: dict) -> bool:
        try:
            self.projects.require_manager(caller, row["project"])
            return True
        except (NotFound, Forbidden):
            return False

    def _rows(self) -> list[dict]:
        return self.db.query("SELECT * FROM deployments ORDER BY name")

    def list_for(self, caller: Caller) -> list[dict]:
        return [self._for(caller, r) for r in self._rows() if self._visible(caller, r)]

    def all(self) -> list[dict]:
        """Every deployment's answer, by name, for views that checked who may see them
        (the Prometheus export)."""
        return [self._public(r) for r in self._rows()]

    def describe(self, name: str) -> dict | None:
        """The answer for ``name`` (``None`` if absent) whoever asks, for code acting for
        the platform (monitoring's drift evaluation)."""
        row = self._row(name)
        return self._public(row) if row is not None else None

    def _require(self, caller: Caller, name: str) -> dict:
        row = self._row(name)
        if row is None or not self._visible(caller, row):
            raise NotFound(f"no deployment {name!r}")
        return row

    def get(self, caller: Caller, name: str) -> dict:
        return self._for(caller, self._require(caller, name))

    def events(self, caller: Caller, name: str) -> list[dict]:
        """The audit log of ``name``; after an undeploy, of the most recent deployment of that
        name the caller's projects held (the log outlives the deployment)."""
        row = self._row(name)
        if row is not None and self._visible(caller, row):
            return self.history.events(name, row["created_by"], row["created_at"])
        for old in self.history.deleted(name):
            if self._visible(caller, old):
                return self.history.events(name, old["created_by"], old["created_at"],
                                           old["deleted_at"])
        raise NotFound(f"no deployment {name!r}")

    def require_change(self, caller: Caller, name: str) -> dict:
        """The row of ``name`` if ``caller`` may change it (owner, project manager, admin, or
        any member where the project allows it); :class:`Forbidden` with the reason if not."""
        row = self._require(caller, name)
        self.projects.require_change(caller, row["project"], row["created_by"],
                                     f"deployment {name!r}")
        return row

    # --- changing ----------------------------------------------------------------------------

    def _update(self, name: str, event: tuple | None = None, **cols) -> None:
        cols["updated_at"] = clock.now()
        sets = ", ".join(f"{k} = :{k}" for k in cols)
        with self.db.tx() as conn:
            conn.execute(sa.text(f"UPDATE deployments SET {sets} WHERE name = :name"),
                         {**cols, "name": name})
            if event:
                record_event(conn, name, *event)

    async def create(self, caller: Caller, name: str, model_name: str, version: str,
                     project: str = DEFAULT_PROJECT, visibility: str = "project") -> dict:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput("deployment names are 1-40 lowercase letters, digits and dashes, "
                               "starting with a letter and not ending with a dash")
        if visibility not in VISIBILITIES:
            raise InvalidInput(f"visibility must be one of {', '.join(VISIBILITIES)}")
        if not model_name or not isinstance(model_name, str):
            raise InvalidInput("model_name is required")
        version = self._version(version)
        self.projects.require_member(caller, project)
        if self._row(name):
            raise Conflict(f"a deployment named {name!r} exists already")
        model_uri = await self.resolver.resolve(model_name, version)  # NotFound if absent
        wait = self.policies.needs_approval(caller, project)
        now = clock.now()
        try:
            with self.db.tx() as conn:
                conn.execute(sa.text(
                    "INSERT INTO deployments (name, project, model_name, model_version, status,"
                    " visibility, created_by, created_at, updated_by, updated_at)"
                    " VALUES (:n, :p, :m, :v, :s, :vis, :u, :t, :u, :t)"),
                    {"n": name, "p": project, "m": model_name, "v": version, "vis": visibility,
                     "u": caller.name, "t": now,
                     "s": "pending_approval" if wait else "starting"})
                record_event(conn, name, caller.name, "created", version,
                            f"{model_name} version {version} in project {project}")
                if wait:
                    record_event(conn, name, caller.name, "requested", version,
                                "waits for a project manager's approval")
        except sa.exc.IntegrityError:
            raise Conflict(f"a deployment named {name!r} exists already") from None
        if not wait:
            self._launch(name, version, model_uri)
        else:
            self._announce(self._row(name), caller.name, "requested", version)
        return self.get(caller, name)

    @staticmethod
    def _version(version) -> str:
        version = str(version if version is not None else "").strip()
        if not version.isdigit():
            raise InvalidInput("version must be a registered model version number")
        return version

    async def switch(self, caller: Caller, name: str, version) -> dict:
        """Point the deployment at another version of its model (roll forward or back)."""
        row = self.require_change(caller, name)
        version = self._version(version)
        if version == row["model_version"] and row["status"] in (
                "ready", "starting", "updating", "pending_approval"):
            return self._for(caller, row)
        model_uri = await self.resolver.resolve(row["model_name"], version)
        if self.policies.needs_approval(caller, row["project"]):
            if row["status"] in ("starting", "updating"):  # what loads now is not approved
                task = self._tasks.pop(name, None)
                if task:
                    task.cancel()
            self._update(name, (caller.name, "requested", version,
                                f"switch from version {row['serving_version'] or 'none'} to "
                                f"{version} waits for a project manager's approval"),
                         model_version=version, status="pending_approval", message="", log="",
                         updated_by=caller.name)
            self._announce(row, caller.name, "requested", version)
            return self.get(caller, name)
        status = "updating" if row["serving_version"] else "starting"
        self._update(name, (caller.name, "switched", version,
                            f"from version {row['model_version']} to {version}"),
                     model_version=version, status=status, message="", log="",
                     updated_by=caller.name)
        self._launch(name, version, model_uri)
        self._announce(row, caller.name, "switched", version)
        return self.get(caller, name)

    # --- approvals (optional, per project) ---------------------------------------------------

    def policy(self, caller: Caller, project: str) -> dict:
        return self.policies.get(caller, project)

    def set_policy(self, caller: Caller, project: str, require_approval) -> dict:
        return self.policies.set(caller, project, require_approval)

    def _pending(self, caller: Caller, name: str) -> dict:
        row = self._require(caller, name)
        self.projects.require_manager(caller, row["project"])
        if row["status"] != "pending_approval":
            raise Conflict(f"deployment {name!r} is {row['status']}, not waiting for approval")
        return row

    def approve(self, caller: Caller, name: str) -> dict:
        row = self._pending(caller, name)
        version = row["model_version"]
        self._update(name, (caller.name, "approved", version, ""), updated_by=caller.name,
                     status="updating" if row["serving_version"] else "starting")
        self._launch(name, version)
        self._announce(row, caller.name, "approved", version)
        return self.get(caller, name)

    def reject(self, caller: Caller, name: str, reason: str = "") -> dict:
        row = self._pending(caller, name)
        message = f"version {row['model_version']} was rejected by {caller.name}" + (
            f": {reason}" if reason else "")
        if row["serving_version"]:  # back to what serves
            self._update(name, (caller.name, "rejected", row["model_version"], reason),
                         model_version=row["serving_version"], status="ready", message=message)
        else:
            self._update(name, (caller.name, "rejected", row["model_version"], reason),
                         status="failed", message=message)
        self._announce(row, caller.name, "rejected", row["model_version"], reason)
        return self.get(caller, name)

    def approvals(self, caller: Caller) -> dict:
        """What the approvals page shows the caller: the policy of every project they manage
        (administrators: all) and the deploys waiting in those projects."""
        managed = [p for p in self.projects.all() if self.projects.is_manager(caller, p)]
        names = {p.name for p in managed}
        policies = self.policies.all()
        rows = self.db.query("SELECT * FROM deployments WHERE status = 'pending_approval'"
                             " ORDER BY updated_at")
        return {
            "projects": [{"project": p.name, "require_approval": bool(
                policies.get(p.name, {}).get("require_approval")),
                "updated_by": policies.get(p.name, {}).get("updated_by")} for p in managed],
            "pending": [self._for(caller, r) for r in rows if r["project"] in names],
        }

    async def delete(self, caller: Caller, name: str) -> None:
        row = self.require_change(caller, name)
        task = self._tasks.pop(name, None)
        if task:
            task.cancel()
        if self.supervisor is not None:
            self.supervisor.forget(name)
        route = self.routes.pop(name, None)
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM deployments WHERE name = :n"), {"n": name})
            self.endpoint_tokens.forget(conn, name)
            record_event(conn, name, caller.name, "deleted", row["serving_version"])
            self.history.archive(conn, row, caller.name)
        self._announce(row, caller.name, "deleted", row["serving_version"] or "")
        self.traffic.pop(name, None)
        for key in ("instance", "pending"):
            if row[key]:
                inst = json.loads(row[key])
                await self._drain(route if key == "instance" else None)
                await self.backend.stop(inst)

    # --- tokens for outside clients ----------------------------------------------------------

    def create_token(self, caller: Caller, name: str, note: str = "") -> dict:
        self.require_change(caller, name)
        return self.endpoint_tokens.create(name, caller.name, note)

    def tokens(self, caller: Caller, name: str) -> list[dict]:
        self._require(caller, name)
        return self.endpoint_tokens.list(name)

    def revoke_token(self, caller: Caller, name: str, token_id: str) -> None:
        self.require_change(caller, name)
        self.endpoint_tokens.revoke(name, caller.name, token_id)

    # --- the endpoint ------------------------------------------------------------------------

    def authorize(self, name: str, caller: Caller | None = None,
                  token: str | None = None) -> Route:
        """The route of an endpoint call, if the caller (or the deployment token) may call it."""
        row = self._row(name)
        if token is not None:
            ok = row is not None and self.endpoint_tokens.grants(name, token)
            if not ok:
                raise Forbidden(f"this token does not grant access to deployment {name!r}")
        elif row is None:
            raise NotFound(f"no deployment {name!r}")
        elif row["visibility"] != "lab" and not self._visible(caller, row):
            raise Forbidden(f"deployment {name!r} is private to project {row['project']!r}")
        if row is None:
            raise NotFound(f"no deployment {name!r}")
        route = self.routes.get(name)
        if route is None:
            why = self.supervisor.reason(name) if self.supervisor else None
            if why:
                raise Unavailable(f"deployment {name!r} does not serve right now ({why}); "
                                  "try again in a few seconds")
            raise Unavailable(f"deployment {name!r} is {row['status']}: no version serves yet")
        return route

    def unreachable(self, name: str, error: str) -> Unavailable:
        """The error of a request its model server did not answer (it stopped, or was being
        replaced); the supervisor checks that server at once."""
        if self.supervisor is not None:
            self.supervisor.poke(name)
            if why := self.supervisor.reason(name):
                return Unavailable(f"the model server of {name!r} did not answer ({error}): "
                                   f"{why}; try again in a few seconds")
        return Unavailable(f"the model server of {name!r} is unreachable ({error}); if it "
                           "stopped it is being restarted: try again in a few seconds")

    def record(self, name: str, seconds: float, ok: bool) -> None:
        self.traffic.setdefault(name, Traffic()).record(seconds, ok)

    # --- rolling out -------------------------------------------------------------------------

    def _launch(self, name: str, version: str, model_uri: str | None = None) -> None:
        """Roll ``name`` out to ``version`` in the background (replacing a rollout under way)."""
        old = self._tasks.pop(name, None)
        if old:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._rollout(name, version, model_uri))
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._tasks.pop(name, None)
                               if self._tasks.get(name) is t else None)

    async def _resolve(self, row: dict, version: str) -> str:
        # At a control plane start MLflow may still be starting too: retry for a while.
        for attempt in range(30):
            try:
                return await self.resolver.resolve(row["model_name"], version)
            except Unavailable:
                if attempt == 29:
                    raise
                await asyncio.sleep(2.0)

    async def _rollout(self, name: str, version: str, model_uri: str | None) -> None:
        try:
            row = self._row(name)
            if row is None:
                return
            if model_uri is None:
                model_uri = await self._resolve(row, version)
            inst = await self.backend.start(name, version, model_uri)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._failed(name, version, e)
            return
        row = self._row(name)
        if row is None or row["model_version"] != version:  # deleted or switched meanwhile
            await self.backend.stop(inst)
            return
        old_route = self.routes.get(name)
        old_inst = json.loads(row["instance"]) if row["instance"] else None
        # The switch: from here on new requests go to the new version.
        self.routes[name] = route_for(self.backend, inst, version)
        self._update(name, (row["updated_by"], "serving", version,
                            f"version {version} serves; previously "
                            f"{row['serving_version'] or 'none'}"),
                     instance=json.dumps(inst), serving_version=version, status="ready",
                     message="", log="")
        log.info("deployment %s: version %s serves", name, version)
        if old_inst:
            await self._drain(old_route)
            await self.backend.stop(old_inst)

    def _failed(self, name: str, version: str, error: Exception) -> None:
        row = self._row(name)
        if row is None:
            return
        keeps = (f"; version {row['serving_version']} keeps serving"
                 if row["serving_version"] else "")
        message = f"version {version} failed to start: {error}{keeps}"
        log.warning("deployment %s: %s", name, message)
        self._update(name, ("system", "failed", version, str(error)), status="failed",
                     message=message, log=getattr(error, "log", "") or str(error))

    async def _drain(self, route: Route | None) -> None:
        """Wait until the requests proxied to a retired route have finished."""
        if route is None:
            return
        deadline = clock.now() + self.drain_timeout
        while route.inflight > 0 and clock.now() < deadline:
            await asyncio.sleep(0.02)

    async def recover(self) -> None:
        """After a control plane (re)start: take over running servers, restart what is missing."""
        keep, targets = [], {}
        for row in self.db.query("SELECT * FROM deployments ORDER BY name"):
            name = row["name"]
            inst = json.loads(row["instance"]) if row["instance"] else None
            if self.supervisor is not None:  # a server that runs is probed from now on
                alive = bool(inst) and self.backend.exit_reason(inst) is None
            else:
                alive = bool(inst) and await self.backend.alive(inst)
            if alive:
                self.routes[name] = route_for(self.backend, inst, row["serving_version"])
                keep.append(inst)
            if row["status"] in ("starting", "updating"):
                targets[name] = row["model_version"]  # a rollout was interrupted: redo it
            elif inst and not alive and self.supervisor is None:
                targets[name] = row["serving_version"]  # its server died: start it again
                self._update(name, ("system", "restarted", row["serving_version"],
                                    "its server had stopped"), instance=None, status="starting")
            log.info("deployment %s: %s", name, "attached" if alive else "not running")
        reap = getattr(self.backend, "reap", None)
        if reap:  # servers of interrupted rollouts or deleted deployments
            await reap(keep)
        for name, version in targets.items():
            self._launch(name, version)
        if self.supervisor is not None:  # it restarts the servers found stopped
            self.supervisor.start()

    async def close(self) -> None:
        """Stop background rollouts (servers keep running: they outlive the control plane)."""
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()
        if self.supervisor is not None:
            await self.supervisor.close()
