"""Organisations, fleets, sites, packs, users and their roles: who owns what, who may do what."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from cellwarden.cloud.store.database import Database
from cellwarden.telemetry.schema import ID_PATTERN


class Role(StrEnum):
    """Per organisation; each role may do what the ones below it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"  # acknowledges alarms, sends diagnostics commands
    ADMIN = "admin"  # manages users, packs, rules

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class RegistryError(ValueError):
    """A registry change that cannot be made; the message names why."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str | None
    roles: dict[int, Role]  # organisation id -> role

    def may(self, org_id: int, needed: Role) -> bool:
        role = self.roles.get(org_id)
        return role is not None and role.rank >= needed.rank


@dataclass(frozen=True)
class PackRef:
    """What ingest needs of a registered device."""

    pack_id: int
    org_id: int
    fleet: str


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Registry:
    """Reads and changes of the registry tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._devices: dict[str, PackRef] = {}
        self._devices_lock = threading.Lock()

    # --- organisations, fleets, sites, packs --------------------------------------------------
    def add_org(self, name: str) -> int:
        _check_name("organisation", name)
        return self._insert("organisations", {"name": name, "created_s": time.time()})

    def org_id(self, name: str) -> int:
        row = self.db.query("SELECT id FROM organisations WHERE name = ?", (name,))
        if not row:
            raise RegistryError(f"no organisation {name!r}")
        return row[0][0]

    def add_fleet(self, org_id: int, name: str) -> int:
        if not ID_PATTERN.match(name):
            raise RegistryError(
                f"fleet {name!r}: use 1-64 letters, digits, '_', '-' or '.' (it is a topic level)"
            )
        return self._insert("fleets", {"org_id": org_id, "name": name, "created_s": time.time()})

    def fleet(self, name: str) -> tuple[int, int]:
        """(fleet id, organisation id) of a fleet name."""
        row = self.db.query("SELECT id, org_id FROM fleets WHERE name = ?", (name,))
        if not row:
            raise RegistryError(f"no fleet {name!r}")
        return row[0]

    def add_site(
        self, org_id: int, name: str, latitude_deg: float | None = None,
        longitude_deg: float | None = None,
    ) -> int:  # fmt: skip
        _check_name("site", name)
        return self._insert("sites", {"org_id": org_id, "name": name,
                                      "latitude_deg": latitude_deg,
                                      "longitude_deg": longitude_deg})  # fmt: skip

    def add_pack(
        self, device_id: str, fleet: str, name: str | None = None, *, site_id: int | None = None,
        chemistry: str | None = None, cell_count: int | None = None,
        capacity_ah: float | None = None,
    ) -> int:  # fmt: skip
        fleet_id, org_id = self.fleet(fleet)
        with self.db.transaction():
            return self.insert_pack(device_id, fleet_id, org_id, name, site_id=site_id,
                                    chemistry=chemistry, cell_count=cell_count,
                                    capacity_ah=capacity_ah)  # fmt: skip

    def insert_pack(
        self, device_id: str, fleet_id: int, org_id: int, name: str | None = None, *,
        site_id: int | None = None, chemistry: str | None = None, cell_count: int | None = None,
        capacity_ah: float | None = None,
    ) -> int:  # fmt: skip
        """``add_pack`` inside the caller's transaction (changes that stand or fall together)."""
        if not ID_PATTERN.match(device_id):
            raise RegistryError(f"device id {device_id!r}: use 1-64 letters, digits, '_-.'")
        return self._insert_in_transaction("packs", {
            "device_id": device_id, "org_id": org_id, "fleet_id": fleet_id, "site_id": site_id,
            "name": name or device_id, "chemistry": chemistry, "cell_count": cell_count,
            "capacity_ah": capacity_ah, "created_s": time.time(),
        })  # fmt: skip

    def device(self, device_id: str) -> PackRef | None:
        """The registered pack behind a device id (cached: devices are not re-registered)."""
        known = self._devices.get(device_id)
        if known is not None:
            return known
        rows = self.db.query(
            "SELECT p.id, p.org_id, f.name FROM packs p JOIN fleets f ON f.id = p.fleet_id "
            "WHERE p.device_id = ?",
            (device_id,),
        )
        if not rows:
            return None
        ref = PackRef(*rows[0])
        with self._devices_lock:
            self._devices[device_id] = ref
        return ref

    # --- users --------------------------------------------------------------------------------
    def add_user(self, name: str, org_id: int, role: Role, email: str | None = None) -> str:
        """Create a user with a role in one organisation; returns the API token (shown once)."""
        _check_name("user", name)
        token = secrets.token_urlsafe(32)
        with self.db.transaction():
            user_id = self._insert_in_transaction("users", {
                "name": name, "token_sha256": token_digest(token), "email": email,
                "created_s": time.time(),
            })  # fmt: skip
            self.db.execute(
                "INSERT INTO memberships (user_id, org_id, role) VALUES (?, ?, ?)",
                (user_id, org_id, role.value),
            )
        return token

    def grant(self, user_name: str, org_id: int, role: Role) -> None:
        """Give an existing user a role in (another) organisation."""
        rows = self.db.query("SELECT id FROM users WHERE name = ?", (user_name,))
        if not rows:
            raise RegistryError(f"no user {user_name!r}")
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO memberships (user_id, org_id, role) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role",
                (rows[0][0], org_id, role.value),
            )

    def user_for_token(self, token: str) -> User | None:
        rows = self.db.query(
            "SELECT u.id, u.name, u.email, m.org_id, m.role FROM users u "
            "LEFT JOIN memberships m ON m.user_id = u.id WHERE u.token_sha256 = ?",
            (token_digest(token),),
        )
        if not rows:
            return None
        roles = {org: Role(role) for *_, org, role in rows if org is not None}
        return User(rows[0][0], rows[0][1], rows[0][2], roles)

    # --- helpers ------------------------------------------------------------------------------
    def _insert(self, table: str, values: dict) -> int:
        with self.db.transaction():
            return self._insert_in_transaction(table, values)

    def _insert_in_transaction(self, table: str, values: dict) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        try:
            row = self.db.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id",
                list(values.values()),
            ).fetchone()
        except Exception as error:
            if _is_conflict(error):
                raise RegistryError(f"{table[:-1]} {values.get('name') or values} exists") from None
            if "foreign key" in str(error).lower():
                raise RegistryError(f"{table[:-1]} refers to an organisation, fleet or site "
                                    "that does not exist") from None  # fmt: skip
            raise
        return int(row[0])


def _check_name(what: str, name: str) -> None:
    if not 1 <= len(name) <= 128 or not name.isprintable():
        raise RegistryError(f"{what} name {name!r} must be 1-128 printable characters")


def _is_conflict(error: Exception) -> bool:
    text = str(error).lower()
    return "unique" in text or "duplicate key" in text
