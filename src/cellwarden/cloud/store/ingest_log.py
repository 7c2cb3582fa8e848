"""What ingest could not store (the quarantine) and what each worker has done (counters)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from cellwarden.cloud.store.database import Database

MAX_QUARANTINED_BYTES = 64 * 1024  # a quarantined payload is kept up to this size


@dataclass
class IngestCounters:
    messages: int = 0
    accepted: int = 0  # records stored
    duplicates: int = 0  # records seen before (QoS 1 redelivery, replays)
    quarantined: int = 0  # payloads set aside


def _topic_prefix(fleet: str) -> str:
    escaped = fleet.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"cw/{escaped}/%"


class IngestLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def quarantine(self, topic: str, reason: str, payload: bytes, received_s: float) -> None:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO quarantine (received_s, topic, reason, payload) VALUES (?, ?, ?, ?)",
                (received_s, topic[:512], reason[:1024], payload[:MAX_QUARANTINED_BYTES]),
            )

    def quarantined(self, limit: int = 100, fleets: Sequence[str] | None = None) -> list[dict]:
        """The newest quarantined payloads; with ``fleets``, only those whose topic names one
        of them (``cw/{fleet}/...``)."""
        where, params = "", []
        if fleets is not None:
            if not fleets:
                return []
            where = "WHERE " + " OR ".join(["topic LIKE ? ESCAPE '!'"] * len(fleets))
            params = [_topic_prefix(fleet) for fleet in fleets]
        rows = self.db.query(
            f"SELECT id, received_s, topic, reason, LENGTH(payload) FROM quarantine {where} "
            "ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        keys = ("id", "received_s", "topic", "reason", "payload_bytes")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def save_counters(self, worker: str, counters: IngestCounters) -> None:
        values = asdict(counters)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO ingest_counters (worker, messages, accepted, duplicates, quarantined, "
                "updated_s) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker) DO UPDATE SET "
                "messages = excluded.messages, accepted = excluded.accepted, "
                "duplicates = excluded.duplicates, quarantined = excluded.quarantined, "
                "updated_s = excluded.updated_s",
                (worker, values["messages"], values["accepted"], values["duplicates"],
                 values["quarantined"], time.time()),
            )  # fmt: skip

    def counters(self) -> dict[str, dict]:
        rows = self.db.query(
            "SELECT worker, messages, accepted, duplicates, quarantined, updated_s "
            "FROM ingest_counters ORDER BY worker"
        )
        keys = ("messages", "accepted", "duplicates", "quarantined", "updated_s")
        return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}
