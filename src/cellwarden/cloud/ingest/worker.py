"""One ingest worker: messages in, validated and stored in batches, acknowledged after commit.

Nothing a device sends can stop it: a payload that does not decode, a topic of an unknown
device, a record that fails validation is quarantined with its reason and counted. A failing
database keeps the batch unacknowledged and retries; the broker holds the rest.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cellwarden.cloud.ingest import validation
from cellwarden.cloud.ingest.mqtt_source import Message, MqttSource
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.ingest_log import IngestCounters
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.telemetry.codec import PayloadError, decode_frame
from cellwarden.telemetry.schema import COMMAND, STATUS, Kind, parse_topic

log = logging.getLogger(__name__)

BATCH_MESSAGES = 500
FLUSH_S = 0.1  # a batch waits at most this long for more messages
COUNTERS_EVERY_S = 2.0
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)

StoredHook = Callable[[Sequence[Arrival], float], None]


@dataclass
class _Item:
    message: Message
    arrival: Arrival


@dataclass
class Prepared:
    """A batch decoded and checked, ready to be written."""

    messages: list[Message]
    now_s: float
    items: list[_Item] = field(default_factory=list)
    rejected: list[tuple[Message, str]] = field(default_factory=list)
    statuses: list[tuple[int, str, str | None]] = field(default_factory=list)


class RejectedError(Exception):
    """A message that is quarantined, with the reason."""


class IngestWorker:
    """Turns MQTT messages into stored records; ``process`` works without a broker (tests)."""

    def __init__(
        self, store: CloudStore, name: str, on_stored: StoredHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.store = store
        self.name = name
        self.on_stored = on_stored
        self.clock = clock
        self.counters = IngestCounters()
        self._counters_saved_s = 0.0

    # --- one batch ----------------------------------------------------------------------------
    def process(self, messages: Sequence[Message]) -> None:
        """Store ``messages`` (quarantining the bad ones); raises only when the database fails,
        in which case none of them should be acknowledged."""
        self.commit(self.prepare(messages))

    def prepare(self, messages: Sequence[Message]) -> Prepared:
        """Decode and check a batch (CPU work; the database is only read, for the registry)."""
        prepared = Prepared(list(messages), self.clock())
        for message in messages:
            try:
                arrival = self._arrival(message, prepared)
            except RejectedError as reason:
                prepared.rejected.append((message, str(reason)))
                continue
            if arrival is not None:
                prepared.items.append(_Item(message, arrival))
        return prepared

    def commit(self, prepared: Prepared) -> None:
        """Write what ``prepare`` made of a batch: quarantine, status, records; then alarms."""
        now_s = prepared.now_s
        self._store(prepared.items, now_s)  # first: when it fails, nothing else was written
        for message, reason in prepared.rejected:
            self._quarantine(message, reason, now_s)
        for pack_id, state, firmware in prepared.statuses:
            self.store.writer.status(pack_id, state, firmware, now_s)
        self.counters.messages += len(prepared.messages)
        if now_s - self._counters_saved_s >= COUNTERS_EVERY_S:
            self.save_counters()

    def save_counters(self) -> None:
        self.store.ingest_log.save_counters(self.name, self.counters)
        self._counters_saved_s = self.clock()

    def _arrival(self, message: Message, prepared: Prepared) -> Arrival | None:
        now_s = prepared.now_s
        try:
            fleet, device_id, leaf = parse_topic(message.topic)
        except ValueError as error:
            raise RejectedError(str(error)) from None
        if leaf == COMMAND:
            return None  # the cloud's own downlink
        ref = self.store.registry.device(device_id)
        if ref is None:
            raise RejectedError(f"device {device_id!r} is not registered")
        if ref.fleet != fleet:
            raise RejectedError(f"device {device_id!r} is not registered in fleet {fleet!r}")
        if leaf == STATUS:
            prepared.statuses.append(_status(ref.pack_id, message))
            return None
        try:
            kind = Kind(leaf)
        except ValueError:
            raise RejectedError(f"unknown record kind {leaf!r} in the topic") from None
        try:
            return _checked_arrival(ref.pack_id, kind, message.payload, now_s)
        except RejectedError:
            raise
        except PayloadError as error:
            raise RejectedError(str(error)) from None
        except Exception as error:  # a payload must never stop the worker: any other failure
            raise RejectedError(
                f"payload cannot be read: {type(error).__name__}: {error}"[:500]
            ) from None

    def _store(self, items: list[_Item], now_s: float) -> None:
        if not items:
            return
        try:
            count = self.store.writer.write([item.arrival for item in items])
            fresh = count.fresh
        except Exception as error:  # isolate the record the database refuses
            if self.store.db.dialect.transient(error):
                raise  # a busy or unreachable database: the batch is retried, nothing acked
            log.warning("batch write failed (%s); storing payload by payload", error)
            count, fresh = None, self._store_one_by_one(items, now_s)
        if count is not None:
            self.counters.accepted += count.accepted
            self.counters.duplicates += count.duplicates
        if self.on_stored is not None and fresh:
            self._after_store(fresh, now_s)

    def _after_store(self, fresh: list[Arrival], now_s: float) -> None:
        """Alarm rules over the new records; tried twice (two workers raising the same alarm
        at once: the second finds the first's), then logged, never blocking telemetry."""
        for attempt in range(2):
            try:  # rules see only records new to the store (not QoS 1 redeliveries)
                self.on_stored(fresh, now_s)
                return
            except Exception:
                if attempt:
                    log.exception("after-store hook failed")

    def _store_one_by_one(self, items: list[_Item], now_s: float) -> list[Arrival]:
        fresh = []
        for item in items:
            try:
                count = self.store.writer.write([item.arrival])
            except Exception as error:
                if self.store.db.dialect.transient(error) or not self._database_alive():
                    raise
                self._quarantine(item.message, f"not storable: {error}", now_s)
                continue
            self.counters.accepted += count.accepted
            self.counters.duplicates += count.duplicates
            fresh += count.fresh
        return fresh

    def _database_alive(self) -> bool:
        try:
            self.store.db.query("SELECT 1")
        except Exception:
            return False
        return True

    def _quarantine(self, message: Message, reason: str, now_s: float) -> None:
        self.store.ingest_log.quarantine(message.topic, reason, message.payload, now_s)
        self.counters.quarantined += 1

    # --- the loop -----------------------------------------------------------------------------
    def run(self, source: MqttSource, stop: threading.Event) -> None:
        """Take batches from ``source`` until ``stop`` is set; acknowledge after storing."""
        announced = False
        while not stop.is_set():
            if not announced and source.subscribed.is_set():
                self.save_counters()  # the worker shows up in the counters once subscribed
                announced = True
            batch = _take(source.inbox, BATCH_MESSAGES, FLUSH_S)
            if not batch:
                continue
            self._process_until_stored(batch, stop)
            for message in batch:
                source.ack(message)
        self.save_counters()

    def _process_until_stored(self, batch: list[Message], stop: threading.Event) -> None:
        for attempt in itertools.count():
            try:
                self.process(batch)
                return
            except Exception as error:
                wait_s = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                log.error("database unavailable (%s); retrying in %.1f s", error, wait_s)
                if stop.wait(wait_s):
                    raise SystemExit("stopped while the database was unavailable") from None


def _checked_arrival(pack_id: int, kind: Kind, payload: bytes, now_s: float) -> Arrival:
    """Decode, validate and make the rows of one payload (CPU only; raises on anything bad)."""
    frame = decode_frame(payload)
    if frame.kind is not kind:
        raise RejectedError(f"a {frame.kind.value} payload on a {kind.value} topic")
    reason = validation.problem(frame, now_s)
    if reason is not None:
        raise RejectedError(reason)
    arrival = Arrival(pack_id, frame, now_s)
    arrival.rows  # noqa: B018 - made here, before the write lock is taken
    return arrival


def _status(pack_id: int, message: Message) -> tuple[int, str, str | None]:
    try:
        status = json.loads(message.payload)
        state = str(status["state"])[:32]
    except (ValueError, KeyError, TypeError):
        raise RejectedError("status is not JSON with a 'state'") from None
    firmware = status.get("firmware")
    return pack_id, state, None if firmware is None else str(firmware)[:64]


def _take(inbox: queue.Queue[Message], limit: int, wait_s: float) -> list[Message]:
    """Up to ``limit`` messages: the first waits up to ``wait_s``, the rest only as long as
    the batch is still young."""
    try:
        batch = [inbox.get(timeout=wait_s)]
    except queue.Empty:
        return []
    deadline = time.monotonic() + wait_s
    while len(batch) < limit:
        remaining = deadline - time.monotonic()
        try:
            batch.append(inbox.get(timeout=remaining) if remaining > 0 else inbox.get_nowait())
        except queue.Empty:
            break
    return batch
