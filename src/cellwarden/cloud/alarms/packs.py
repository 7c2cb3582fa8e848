"""What alarms need to know of a pack: its organisation, fleet and the names a message uses."""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass

from cellwarden.cloud.store.database import Database

_SELECT = (
    "SELECT p.id, p.org_id, p.name, p.device_id, f.name{extra} FROM packs p "
    "JOIN fleets f ON f.id = p.fleet_id"
)


@dataclass(frozen=True)
class PackInfo:
    id: int
    org_id: int
    name: str
    device_id: str
    fleet: str

    @property
    def label(self) -> str:
        """How messages name the pack: ``pack Scooter 12 (dev-12)``."""
        return f"pack {self.name} ({self.device_id})"


class PackDirectory:
    """Pack names by id, cached (packs are not re-registered), and their last arrivals."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[int, PackInfo] = {}
        self._lock = threading.Lock()

    def get(self, pack_ids: Collection[int]) -> dict[int, PackInfo]:
        """The registered packs among ``pack_ids``."""
        missing = [pack_id for pack_id in pack_ids if pack_id not in self._known]
        if missing:
            marks = ", ".join("?" * len(missing))
            rows = self.db.query(f"{_SELECT.format(extra='')} WHERE p.id IN ({marks})", missing)
            with self._lock:
                self._known.update((row[0], PackInfo(*row)) for row in rows)
        known = self._known
        return {pack_id: known[pack_id] for pack_id in pack_ids if pack_id in known}

    def last_received(self, org_ids: Collection[int]) -> list[tuple[PackInfo, float]]:
        """Every pack of these organisations that has sent data, with when it last arrived."""
        if not org_ids:
            return []
        marks = ", ".join("?" * len(org_ids))
        rows = self.db.query(
            f"{_SELECT.format(extra=', l.received_s')} JOIN pack_latest l ON l.pack_id = p.id "
            f"WHERE l.received_s IS NOT NULL AND p.org_id IN ({marks})",
            list(org_ids),
        )
        return [(PackInfo(*row[:5]), float(row[5])) for row in rows]
