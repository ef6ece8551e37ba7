"""Projects: what experiments, datasets, jobs and deployments belong to, and who may see them.

Every capability asks this one place whether a caller may act on a project:
:meth:`Projects.require_member` (read and create inside it), :meth:`Projects.require_manager`
(change members, quota, approvals). A project the caller is not in is reported as absent
(:class:`NotFound`), never as forbidden, so names of other projects do not leak.

Who may change a resource inside a project (a deployment, a dataset, a job):
:meth:`Projects.require_change`. Reading is open to members; changing or deleting belongs to
the resource's owner (its creator), the project's managers and administrators, unless the
project lets members change each other's work (``members_change_others_work``, off by default,
set by its managers). The caller learns whether it acted on someone else's work, so the
resource records the change for its owner to see.

Who is a member: system administrators (every project), everyone for a project marked
``everyone`` (the default project ``default`` holds everyone until project managers create
others), users added by name, and members of a hub group linked to the project. Groups come
from the hub; with SSO they are the identity provider's groups, so an IdP group such as
``cells-team`` maps to a project by one link (``MlopsHub.group_projects``).
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import clock
from .db import Database
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .roles import MANAGE, Caller

DEFAULT_PROJECT = "default"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Hub user and group names: what JupyterHub accepts, minus characters no sane name carries.
PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$")
MEMBER_ROLES = ("member", "manager")
MAX_TEXT = 4000

# Statements are portable SQL (SQLite here, Postgres on Kubernetes): FALSE rather than 0 for
# booleans, ids computed in the transaction rather than AUTOINCREMENT/SERIAL.
SCHEMA = [
    """CREATE TABLE projects (
        name VARCHAR(63) PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        gpu_quota INTEGER,
        reference_dataset VARCHAR(255),
        created_by VARCHAR(255) NOT NULL,
        created_at FLOAT NOT NULL,
        everyone BOOLEAN NOT NULL DEFAULT FALSE
    )""",
    """CREATE TABLE project_members (
        project VARCHAR(63) NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
        username VARCHAR(255) NOT NULL,
        role VARCHAR(32) NOT NULL DEFAULT 'member',
        PRIMARY KEY (project, username)
    )""",
    # The ceiling an administrator allows a project manager to set gpu_quota to (NULL: the
    # platform's whole inventory).
    "ALTER TABLE projects ADD COLUMN gpu_quota_max INTEGER",
    """CREATE TABLE project_groups (
        project VARCHAR(63) NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
        group_name VARCHAR(255) NOT NULL,
        PRIMARY KEY (project, group_name)
    )""",
    """CREATE TABLE project_milestones (
        id INTEGER PRIMARY KEY,
        project VARCHAR(63) NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
        title VARCHAR(255) NOT NULL,
        due DATE NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE,
        created_at FLOAT NOT NULL
    )""",
    # "Members may change each other's work": off, changes belong to owners and managers.
    "ALTER TABLE projects ADD COLUMN members_change_others_work BOOLEAN NOT NULL DEFAULT FALSE",
]


@dataclass(frozen=True)
class Project:
    name: str
    description: str = ""
    gpu_quota: int | None = None
    reference_dataset: str | None = None
    created_by: str = ""
    created_at: float = 0.0
    everyone: bool = False  # every lab member belongs (the default project)
    gpu_quota_max: int | None = None  # set by an administrator; the manager's quota <= this
    members_change_others_work: bool = False  # members may change and delete each other's work

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Milestone:
    id: int
    project: str
    title: str
    due: str  # ISO date
    done: bool
    created_at: float

    def to_dict(self) -> dict:
        return asdict(self)


def _check_quota(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{what} is a whole number of GPUs >= 0 or null, not {value!r}")
    return value


def _check_principal(value, what: str) -> str:
    if not isinstance(value, str) or not PRINCIPAL_RE.match(value):
        raise InvalidInput(f"{what} must be a hub name (letters, digits, . _ @ + -), "
                           f"not {value!r}")
    return value


def _check_text(value, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{what} must be text of at most {limit} characters")
    return value


def _check_due(value) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise InvalidInput(f"a milestone's due date is YYYY-MM-DD, not {value!r}") from None


class Projects:
    def __init__(self, db: Database):
        self.db = db
        try:
            db.migrate("projects", SCHEMA)
        except sa.exc.OperationalError:
            # Another process (hub and control plane share the database) migrated at the same
            # moment; its statements are in now.
            time.sleep(0.2)
            db.migrate("projects", SCHEMA)
        if not self._row(DEFAULT_PROJECT):
            try:
                with db.tx() as conn:
                    conn.execute(sa.text(
                        "INSERT INTO projects (name, description, created_by, created_at,"
                        " everyone) VALUES (:n, :d, 'system', :t, :e)"),
                        {"n": DEFAULT_PROJECT, "d": "Everyone's project", "t": clock.now(),
                         "e": True})
            except sa.exc.IntegrityError:
                pass  # created concurrently

    # --- reading ------------------------------------------------------------------------------

    @staticmethod
    def _project(r: dict) -> Project:
        r["everyone"] = bool(r["everyone"])
        r["members_change_others_work"] = bool(r.get("members_change_others_work"))
        return Project(**r)

    def _row(self, name: str) -> Project | None:
        rows = self.db.query("SELECT * FROM projects WHERE name = :n", n=name)
        return self._project(rows[0]) if rows else None

    def get(self, name: str) -> Project | None:
        """The project, whoever asks (for code that has authorised the caller already)."""
        return self._row(name)

    def all(self) -> list[Project]:
        """Every project (the administrator's view)."""
        return [self._project(r) for r in self.db.query("SELECT * FROM projects ORDER BY name")]

    def names(self, everyone: bool) -> list[str]:
        """Names of the projects that hold everyone (``True``) or do not (``False``), sorted:
        which datasets every lab member may read in the shared root."""
        return [r["name"] for r in self.db.query(
            "SELECT name FROM projects WHERE " + ("everyone" if everyone else "NOT everyone")
            + " ORDER BY name")]

    def referencing(self, dataset: str) -> list[str]:
        """Projects whose reference dataset is a version of ``dataset``."""
        return [r["name"] for r in self.db.query(
            "SELECT name FROM projects WHERE reference_dataset LIKE :p", p=f"{dataset}@%")]

    @staticmethod
    def gpu_quota_in(conn: Connection, name: str) -> int | None:
        """The GPU quota of project ``name`` read on ``conn``, so the GPU allocator checks it
        inside its own locked transaction; ``None`` for no quota, no such project, or a
        database without projects."""
        if not sa.inspect(conn).has_table("projects"):
            return None
        row = conn.execute(sa.text("SELECT gpu_quota FROM projects WHERE name = :p"),
                           {"p": name}).first()
        return row[0] if row else None

    def is_member(self, caller: Caller, project: Project) -> bool:
        if caller.is_admin or project.everyone:
            return True
        if self.db.query(
                "SELECT 1 FROM project_members WHERE project = :p AND username = :u",
                p=project.name, u=caller.name):
            return True
        return bool(set(caller.groups) & set(self.groups(project.name)))

    def list_for(self, caller: Caller) -> list[Project]:
        return [p for p in self.all() if self.is_member(caller, p)]

    def require_member(self, caller: Caller, name: str) -> Project:
        project = self._row(name) if isinstance(name, str) else None
        if project is None or not self.is_member(caller, project):
            raise NotFound(f"no project {name!r}")
        return project

    def is_manager(self, caller: Caller, project: Project) -> bool:
        """Administrators; project managers who created it, were made its managers, or belong
        to a group linked to it (with SSO: the project manager of an IdP team manages the
        team's project)."""
        if caller.is_admin:
            return True
        if MANAGE not in caller.scopes or project.everyone:
            return False
        return project.created_by == caller.name or bool(self.db.query(
            "SELECT 1 FROM project_members WHERE project = :p AND username = :u"
            " AND role = 'manager'", p=project.name, u=caller.name)) or bool(
            set(caller.groups) & set(self.groups(project.name)))

    def manager_names(self, name: str) -> list[str]:
        """Who manages project ``name`` by name: its creator and members made managers
        (managers through a linked hub group are known to the hub only)."""
        project = self._row(name)
        if not project or project.everyone:
            return []
        rows = self.db.query("SELECT username FROM project_members WHERE project = :p"
                             " AND role = 'manager' ORDER BY username", p=name)
        return list(dict.fromkeys([project.created_by, *(r["username"] for r in rows)]))

    def require_manager(self, caller: Caller, name: str) -> Project:
        project = self.require_member(caller, name)
        if not self.is_manager(caller, project):
            raise Forbidden(f"only a manager of project {name!r} may do this")
        return project

    def require_change(self, caller: Caller, name: str, owner: str, what: str) -> Project:
        """May ``caller`` change or delete ``what`` (a resource of project ``name`` created by
        ``owner``)? Returns the project; :class:`NotFound` for non-members (nothing leaks),
        :class:`Forbidden` with the reason for members who may not.

        The owner, the project's managers and administrators may; other members only when the
        project lets members change each other's work.
        """
        project = self.require_member(caller, name)
        if caller.name == owner or project.members_change_others_work or \
                self.is_manager(caller, project):
            return project
        raise Forbidden(
            f"{what} belongs to {owner}: only its owner, managers of project {name!r} and "
            f"administrators may change or delete it (the project does not let members change "
            "each other's work)", owner=owner, project=name)

    def members(self, name: str) -> list[dict]:
        """Users added by name: ``[{"username", "role"}]`` (group members come from the hub)."""
        return self.db.query(
            "SELECT username, role FROM project_members WHERE project = :p ORDER BY username",
            p=name)

    def groups(self, name: str) -> list[str]:
        return [r["group_name"] for r in self.db.query(
            "SELECT group_name FROM project_groups WHERE project = :p ORDER BY group_name",
            p=name)]

    def milestones(self, name: str) -> list[Milestone]:
        rows = self.db.query(
            "SELECT * FROM project_milestones WHERE project = :p ORDER BY due, id", p=name)
        return [Milestone(id=r["id"], project=r["project"], title=r["title"],
                          due=str(r["due"]), done=bool(r["done"]),
                          created_at=r["created_at"]) for r in rows]

    def detail(self, caller: Caller, name: str) -> dict:
        """A project as its members see it: settings, members, groups, milestones."""
        project = self.require_member(caller, name)
        return {
            **project.to_dict(),
            "members": self.members(name),
            "groups": self.groups(name),
            "milestones": [m.to_dict() for m in self.milestones(name)],
            "can_manage": self.is_manager(caller, project),
        }

    # --- changing -----------------------------------------------------------------------------

    def create(self, caller: Caller, name: str, description: str = "",
               gpu_quota: int | None = None, reference_dataset: str | None = None,
               members=(), groups=()) -> Project:
        if MANAGE not in caller.scopes and not caller.is_admin:
            raise Forbidden("only project managers and administrators create projects")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput(
                "project names are 1-63 lowercase letters, digits and dashes, "
                "starting with a letter or digit")
        _check_text(description, "description")
        _check_quota(gpu_quota, "gpu_quota")
        if reference_dataset is not None:
            _check_text(reference_dataset, "reference_dataset", 255)
        if isinstance(members, str) or isinstance(groups, str):
            raise InvalidInput("members and groups are lists of names")
        members = [_check_principal(m, "a member") for m in members]
        groups = [_check_principal(g, "a group") for g in groups]
        if self._row(name):
            raise Conflict(f"project {name!r} exists already")
        try:
            with self.db.tx() as conn:
                conn.execute(sa.text(
                    "INSERT INTO projects (name, description, gpu_quota, reference_dataset,"
                    " created_by, created_at) VALUES (:n, :d, :q, :r, :u, :t)"),
                    {"n": name, "d": description, "q": gpu_quota, "r": reference_dataset,
                     "u": caller.name, "t": clock.now()})
                conn.execute(sa.text(
                    "INSERT INTO project_members (project, username, role)"
                    " VALUES (:p, :u, 'manager')"), {"p": name, "u": caller.name})
                for m in sorted(set(members) - {caller.name}):
                    conn.execute(sa.text(
                        "INSERT INTO project_members (project, username, role)"
                        " VALUES (:p, :u, 'member')"), {"p": name, "u": m})
                for g in sorted(set(groups)):
                    conn.execute(sa.text(
                        "INSERT INTO project_groups (project, group_name) VALUES (:p, :g)"),
                        {"p": name, "g": g})
        except sa.exc.IntegrityError:
            raise Conflict(f"project {name!r} exists already") from None
        return self._row(name)

    def update(self, caller: Caller, name: str, /, **changes) -> Project:
        """Change ``description``, ``gpu_quota``, ``reference_dataset``,
        ``members_change_others_work`` (managers) or ``gpu_quota_max`` (administrators). A
        manager's quota stays within the ceiling."""
        project = self.require_manager(caller, name)
        allowed = {"description", "gpu_quota", "reference_dataset", "gpu_quota_max",
                   "members_change_others_work"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(f"unknown project field(s): {', '.join(sorted(unknown))}")
        if "description" in changes:
            _check_text(changes["description"], "description")
        if "reference_dataset" in changes and changes["reference_dataset"] is not None:
            _check_text(changes["reference_dataset"], "reference_dataset", 255)
        if "members_change_others_work" in changes and \
                not isinstance(changes["members_change_others_work"], bool):
            raise InvalidInput("members_change_others_work is true or false")
        if "gpu_quota_max" in changes:
            if not caller.is_admin:
                raise Forbidden("only administrators set the GPU ceiling of a project")
            _check_quota(changes["gpu_quota_max"], "gpu_quota_max")
        if "gpu_quota" in changes:
            quota = _check_quota(changes["gpu_quota"], "gpu_quota")
            ceiling = changes.get("gpu_quota_max", project.gpu_quota_max)
            if quota is not None and ceiling is not None and quota > ceiling and \
                    not caller.is_admin:
                raise InvalidInput(
                    f"GPU quota {quota} is above the {ceiling} GPU(s) the administrator allows "
                    f"project {name!r}")
        if not changes:
            return project
        sets = ", ".join(f"{k} = :{k}" for k in sorted(changes))
        with self.db.tx() as conn:
            conn.execute(sa.text(f"UPDATE projects SET {sets} WHERE name = :name"),
                         {**changes, "name": name})
        return self._row(name)

    def delete(self, caller: Caller, name: str) -> None:
        project = self.require_manager(caller, name)
        if project.everyone:
            raise Conflict(f"project {name!r} holds everyone and cannot be deleted")
        with self.db.tx() as conn:
            for table in ("project_members", "project_groups", "project_milestones"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE project = :p"), {"p": name})
            conn.execute(sa.text("DELETE FROM projects WHERE name = :p"), {"p": name})

    def add_member(self, caller: Caller, name: str, username: str,
                   role: str = "member") -> list[dict]:
        self.require_manager(caller, name)
        _check_principal(username, "a member")
        if role not in MEMBER_ROLES:
            raise InvalidInput(f"a member's role is one of {', '.join(MEMBER_ROLES)}")
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM project_members WHERE project = :p"
                                 " AND username = :u"), {"p": name, "u": username})
            conn.execute(sa.text("INSERT INTO project_members (project, username, role)"
                                 " VALUES (:p, :u, :r)"), {"p": name, "u": username, "r": role})
        return self.members(name)

    def remove_member(self, caller: Caller, name: str, username: str) -> list[dict]:
        self.require_manager(caller, name)
        with self.db.tx() as conn:
            res = conn.execute(sa.text("DELETE FROM project_members WHERE project = :p"
                                       " AND username = :u"), {"p": name, "u": username})
        if not res.rowcount:
            raise NotFound(f"{username!r} is not a member of project {name!r}")
        return self.members(name)

    def set_groups(self, caller: Caller, name: str, groups) -> list[str]:
        """Link hub (IdP) groups to the project: their members become members."""
        if not caller.is_admin:
            raise Forbidden("only administrators link groups to projects")
        self.require_member(caller, name)
        if isinstance(groups, str) or not isinstance(groups, (list, tuple, set)):
            raise InvalidInput("groups is a list of group names")
        groups = sorted({_check_principal(g, "a group") for g in groups})
        with self.db.tx() as conn:
            conn.execute(sa.text("DELETE FROM project_groups WHERE project = :p"), {"p": name})
            for g in groups:
                conn.execute(sa.text(
                    "INSERT INTO project_groups (project, group_name) VALUES (:p, :g)"),
                    {"p": name, "g": g})
        return groups

    def apply_group_mapping(self, mapping: dict[str, list[str]]) -> None:
        """Create the projects an IdP-group mapping names and link the groups (at start)."""
        for group, projects in sorted(mapping.items()):
            _check_principal(group, "a mapped group")
            for name in projects:
                if not NAME_RE.match(name):
                    raise InvalidInput(f"group mapping names an invalid project {name!r}")
                with self.db.tx() as conn:
                    if not conn.execute(sa.text("SELECT 1 FROM projects WHERE name = :n"),
                                        {"n": name}).first():
                        conn.execute(sa.text(
                            "INSERT INTO projects (name, description, created_by, created_at)"
                            " VALUES (:n, :d, 'system', :t)"),
                            {"n": name, "d": f"Project of IdP group {group}",
                             "t": clock.now()})
                    if not conn.execute(sa.text(
                            "SELECT 1 FROM project_groups WHERE project = :p AND group_name = :g"),
                            {"p": name, "g": group}).first():
                        conn.execute(sa.text(
                            "INSERT INTO project_groups (project, group_name) VALUES (:p, :g)"),
                            {"p": name, "g": group})

    def add_milestone(self, caller: Caller, name: str, title: str, due: str) -> Milestone:
        self.require_manager(caller, name)
        if not isinstance(title, str) or not title.strip() or len(title) > 255:
            raise InvalidInput("a milestone needs a title of 1-255 characters")
        due = _check_due(due)
        with self.db.tx() as conn:
            # Ids computed here rather than by SERIAL/AUTOINCREMENT: one statement for SQLite
            # and Postgres alike.
            mid = conn.execute(sa.text(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM project_milestones")).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO project_milestones (id, project, title, due, done, created_at)"
                " VALUES (:i, :p, :t, :d, :f, :c)"),
                {"i": mid, "p": name, "t": title.strip(), "d": due, "f": False,
                 "c": clock.now()})
        return next(m for m in self.milestones(name) if m.id == mid)

    def set_milestone(self, caller: Caller, name: str, milestone_id: int,
                      done: bool) -> Milestone:
        self.require_manager(caller, name)
        if not isinstance(done, bool):
            raise InvalidInput("done is true or false")
        with self.db.tx() as conn:
            res = conn.execute(sa.text(
                "UPDATE project_milestones SET done = :d WHERE id = :i AND project = :p"),
                {"d": done, "i": milestone_id, "p": name})
        if not res.rowcount:
            raise NotFound(f"no milestone {milestone_id} in project {name!r}")
        return next(m for m in self.milestones(name) if m.id == milestone_id)

    def delete_milestone(self, caller: Caller, name: str, milestone_id: int) -> None:
        self.require_manager(caller, name)
        with self.db.tx() as conn:
            res = conn.execute(sa.text(
                "DELETE FROM project_milestones WHERE id = :i AND project = :p"),
                {"i": milestone_id, "p": name})
        if not res.rowcount:
            raise NotFound(f"no milestone {milestone_id} in project {name!r}")
