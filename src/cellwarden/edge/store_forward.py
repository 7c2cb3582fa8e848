"""Store-and-forward: a durable, bounded, ordered queue of telemetry records between the BMS and
the uplink (SQLite in WAL mode, one file).

Every record gets the device's next sequence number when it is stored; a record leaves the queue
only when the broker has acknowledged it (QoS 1), so a kill or a power cut at any instant loses
nothing that ``put`` returned for, and a record sent twice carries the same sequence number for
the receiver to drop. When the queue outgrows its bound, detail (cells, position, health) is
thinned first, oldest half first, then summaries; events and command replies are never dropped.
A queue file that is not a database any more is set aside and a new one started, with sequence
numbers continuing past every number the old file may have used.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2

from cellwarden.edge.flash_files import write_atomic
from cellwarden.telemetry.schema import PRIORITY, Kind, Priority

SEQ_BLOCK = 4096  # sequence numbers reserved ahead in the side file
QUEUE_FILE = "queue.sqlite"
SEQ_FILE = "seq.hwm"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    time_s REAL NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""


class QueueError(RuntimeError):
    """The queue cannot store a record (disk full, I/O error); the message names the cause."""


@dataclass(frozen=True)
class QueuedRecord:
    seq: int
    kind: Kind
    time_s: float
    record: dict[str, Any]


class StoreAndForward:
    """The queue in ``directory``; ``max_bytes`` bounds the records' stored size."""

    def __init__(self, directory: Path, max_bytes: int = 64 * 1024 * 1024, durable: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / QUEUE_FILE
        self.max_bytes = max_bytes
        self.recovered: str | None = None  # what was wrong with a file set aside at start
        self.last_error: str | None = None
        self._inflight: dict[int, tuple[Kind, float]] = {}
        self._synchronous = "FULL" if durable else "NORMAL"
        self.db = self._open()
        # an index in memory of what waits (not in flight), per kind, oldest first
        self._waiting: dict[Kind, dict[int, float]] = {kind: {} for kind in Kind}
        for seq, kind, time_s in self.db.execute(
            "SELECT seq, kind, time_s FROM records ORDER BY seq"
        ):
            self._waiting[Kind(kind)][seq] = time_s
        self._seq_limit = self._read_seq_file()
        stored_next = self._meta("next_seq", 0)
        # a file without its counter (set aside, emptied, replaced) continues past every number
        # the side file says may have been used
        self.next_seq = int(stored_next) if stored_next else max(1, self._seq_limit)
        self.stored_bytes = int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM records")
                                .fetchone()[0])  # fmt: skip
        self.dropped: dict[str, int] = {
            kind.value: int(self._meta(f"dropped:{kind.value}", 0)) for kind in Kind
        }

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.OperationalError as error:  # locked, disk full, I/O: not corruption
            raise QueueError(
                f"store-and-forward queue {self.path} cannot be opened ({error})"
            ) from error
        except sqlite3.DatabaseError as error:
            aside = self._set_aside()
            self.recovered = (
                f"store-and-forward queue {self.path} was unreadable ({error}); "
                f"moved to {aside.name} and a new queue started"
            )
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check}")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _set_aside(self) -> Path:
        index = 1
        while (aside := self.path.with_name(f"{QUEUE_FILE}.corrupt-{index}")).exists():
            index += 1
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            companion = self.path.with_name(QUEUE_FILE + suffix)
            if companion.exists():
                companion.rename(aside.with_name(aside.name + suffix))
        return aside

    def _read_seq_file(self) -> int:
        try:
            return int((self.directory / SEQ_FILE).read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _reserve_seqs(self, upto: int) -> None:
        """Record in the side file that sequence numbers below ``limit`` may be in use."""
        limit = upto + SEQ_BLOCK
        write_atomic(self.directory / SEQ_FILE, str(limit).encode())
        self._seq_limit = limit

    def _meta(self, key: str, default: float) -> float:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def put(self, items: Sequence[tuple[Kind, float, dict[str, Any]]]) -> list[int]:
        """Store records (kind, time, record) in one transaction; their sequence numbers."""
        if not items:
            return []
        first = self.next_seq
        rows = []
        for offset, (kind, time_s, record) in enumerate(items):
            body = cbor2.dumps(record)
            rows.append((first + offset, kind.value, int(PRIORITY[kind]), time_s, body, len(body)))
        try:
            if first + len(rows) > self._seq_limit:
                self._reserve_seqs(first + len(rows))
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._set_meta("next_seq", first + len(rows))
            for kind in {kind for kind, _, _ in items}:
                latest = max(t for k, t, _ in items if k is kind)
                self._set_meta(f"until:{kind.value}", latest)
            self.db.execute("COMMIT")
        except (sqlite3.Error, OSError) as error:
            self._rollback()
            raise QueueError(
                f"store-and-forward queue {self.path}: cannot store ({error})"
            ) from error
        self.next_seq = first + len(rows)
        self.stored_bytes += sum(row[5] for row in rows)
        for row, (kind, _, _) in zip(rows, items, strict=True):
            self._waiting[kind][row[0]] = row[3]
        if self.stored_bytes > self.max_bytes:
            try:
                self._thin()
            except QueueError as error:  # the records are stored: say so, thin next time
                self.last_error = str(error)
        return [row[0] for row in rows]

    def clock_epoch_s(self, proposed_s: float) -> float:
        """The record clock's epoch this queue was started with (``proposed_s`` the first
        time), so that a restarted simulation stamps its records as the first run did."""
        stored = self._meta("clock_epoch", math.nan)
        if not math.isnan(stored):
            return stored
        with self.db:
            self._set_meta("clock_epoch", proposed_s)
        return proposed_s

    def produced_until_s(self, kind: Kind) -> float:
        """Time of the newest record of ``kind`` ever stored (-inf before the first)."""
        return self._meta(f"until:{kind.value}", float("-inf"))

    def take(self, kind: Kind, limit: int) -> list[QueuedRecord]:
        """Up to ``limit`` of the oldest records of ``kind`` not already on their way."""
        waiting = self._waiting[kind]
        seqs = list(itertools.islice(waiting, limit))
        if not seqs:
            return []
        rows = self.db.execute(
            f"SELECT seq, time_s, body FROM records WHERE seq IN ({_marks(seqs)}) ORDER BY seq",
            seqs,
        ).fetchall()
        for seq in seqs:
            self._inflight[seq] = (kind, waiting.pop(seq))
        return [QueuedRecord(seq, kind, time_s, cbor2.loads(body)) for seq, time_s, body in rows]

    def oldest_time_s(self, kind: Kind) -> float | None:
        """Time of the oldest waiting (not in-flight) record of ``kind``."""
        return next(iter(self._waiting[kind].values()), None)

    def waiting(self, kind: Kind) -> int:
        """Records of ``kind`` stored and not on their way."""
        return len(self._waiting[kind])

    def ack(self, seqs: Iterable[int]) -> None:
        """The broker has the records: remove them."""
        seqs = list(seqs)
        for seq in seqs:
            self._inflight.pop(seq, None)
        if not seqs:
            return
        try:
            # a removal lost to a power cut only sends the records again (the receiver drops
            # them by sequence number): it need not wait for the disk
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("BEGIN IMMEDIATE")
            freed = self.db.execute(
                f"SELECT COALESCE(SUM(size), 0) FROM records WHERE seq IN ({_marks(seqs)})", seqs
            ).fetchone()[0]
            self.db.execute(f"DELETE FROM records WHERE seq IN ({_marks(seqs)})", seqs)
            self.db.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            raise QueueError(
                f"store-and-forward queue {self.path}: cannot remove ({error})"
            ) from error
        finally:
            self.db.execute(f"PRAGMA synchronous={self._synchronous}")
        self.stored_bytes -= int(freed)

    def release(self, seqs: Iterable[int] | None = None) -> None:
        """Records sent but not acknowledged (link lost) wait again; all when ``seqs`` is None."""
        seqs = list(self._inflight) if seqs is None else list(seqs)
        touched = set()
        for seq in seqs:
            entry = self._inflight.pop(seq, None)
            if entry is not None:
                self._waiting[entry[0]][seq] = entry[1]
                touched.add(entry[0])
        for kind in touched:  # back in sequence order
            self._waiting[kind] = dict(sorted(self._waiting[kind].items()))

    @property
    def records(self) -> int:
        """Records stored, waiting or in flight."""
        return len(self._inflight) + sum(len(waiting) for waiting in self._waiting.values())

    def _thin(self) -> None:
        """Drop every other record of the oldest half of the most expendable class until the
        queue fits; in-flight records are left alone."""
        for priority in (Priority.DETAIL, Priority.SUMMARY):
            while self.stored_bytes > self.max_bytes:
                rows = self.db.execute(
                    "SELECT seq, kind, size FROM records WHERE priority = ? ORDER BY seq",
                    (int(priority),),
                ).fetchall()
                rows = [row for row in rows if row[0] not in self._inflight]
                if not rows:
                    break
                oldest = rows[: max(1, len(rows) // 2)]
                victims = oldest[1::2] if len(oldest) > 1 else oldest
                self._drop(victims)

    def _drop(self, victims: list[tuple[int, str, int]]) -> None:
        seqs = [seq for seq, _, _ in victims]
        counts: dict[str, int] = {}
        for _, kind, _ in victims:
            counts[kind] = counts.get(kind, 0) + 1
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(f"DELETE FROM records WHERE seq IN ({_marks(seqs)})", seqs)
            for kind, count in counts.items():
                self._set_meta(f"dropped:{kind}", self.dropped[kind] + count)
            self.db.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            raise QueueError(
                f"store-and-forward queue {self.path}: cannot thin ({error})"
            ) from error
        for kind, count in counts.items():
            self.dropped[kind] += count
        for seq, kind, _ in victims:
            self._waiting[Kind(kind)].pop(seq, None)
        self.stored_bytes -= sum(size for _, _, size in victims)

    def _set_meta(self, key: str, value: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _rollback(self) -> None:
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.db.close()


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))
