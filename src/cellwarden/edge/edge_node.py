"""The device's edge on the BMS's clock: telemetry into store-and-forward and the data logger,
batches over the cellular link to the broker, GPS and geofences, downlink commands.

``tick`` runs as a periodic task beside the BMS (once per second of the device's clock). It
never waits on the network: publishing hands packets to the MQTT thread, and what the broker
answers is picked up at the next tick.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cellwarden.edge.bms_source import BmsTelemetry, plain
from cellwarden.edge.cellular_link import CellularLink
from cellwarden.edge.commands import CommandHandler
from cellwarden.edge.geofence import Geofence, GeofenceMonitor
from cellwarden.edge.mqtt_framing import (
    PING_EXCHANGE_BYTES,
    connack_bytes,
    connect_bytes,
    puback_bytes,
    publish_bytes,
    suback_bytes,
    subscribe_bytes,
)
from cellwarden.edge.mqtt_uplink import KEEPALIVE_S, OFFLINE, MqttUplink
from cellwarden.edge.store_forward import QueueError, StoreAndForward
from cellwarden.hardware.gps import NmeaReader, SimulatedGps, loop_route, speed_from_power_kmh
from cellwarden.model.edge import MOBILE_SECTORS, EdgeSpec, GpsSpec
from cellwarden.telemetry import codec
from cellwarden.telemetry.schema import PRIORITY, Kind, Priority, topic

if TYPE_CHECKING:
    from cellwarden.edge.datalogger import DataLogger

REFUSED_HOLD_S = 60.0  # after the broker refuses a publish, wait this long before sending again
MAX_TICK_S = 5.0  # without a data logger the edge runs at least this often
MAX_MESSAGES_IN_FLIGHT = 16
GPS_POLL_S = 5.0  # the receiver is read (and geofences checked) this often
MAX_UNSTORED = 10_000  # events held in memory while the queue cannot store them
SEND_ORDER = sorted(Kind, key=lambda kind: (PRIORITY[kind], list(Kind).index(kind)))
FIRMWARE_VERSION = "cellwarden-0.1.0"


@dataclass
class _Message:
    kind: Kind
    seqs: list[int]
    topic: str
    payload: bytes
    arrival_s: float


@dataclass
class EdgeStats:
    """Counts by record kind, for the run's summary."""

    produced: Counter = field(default_factory=Counter)
    acknowledged: Counter = field(default_factory=Counter)
    not_stored: Counter = field(default_factory=Counter)
    messages_sent: int = 0
    commands: int = 0
    tick_failures: int = 0
    errors: list[str] = field(default_factory=list)


class EdgeNode:
    """One device's edge over a running BMS."""

    def __init__(
        self,
        source: BmsTelemetry,
        spec: EdgeSpec,
        queue: StoreAndForward,
        link: CellularLink,
        *,
        fleet: str,
        device_id: str,
        sector: str = "",
        seed: int = 1,
        uplink: MqttUplink | None = None,
        logger: DataLogger | None = None,
        command_key: str | None = None,
        debug_json: bool = False,
        clock_epoch_s: float = 0.0,
    ) -> None:
        """``clock_epoch_s`` is added to every record's time: the Unix time of the simulated
        clock's zero, so that records carry the wall time a real device's clock would give."""
        self.source = source
        self.queue = queue
        self.link = link
        self.uplink = uplink
        self.logger = logger
        self.fleet, self.device_id = fleet, device_id
        self.debug_json = debug_json
        self.stats = EdgeStats()
        self.rates_s = {
            "summary_s": spec.summary_period_s,
            "cells_s": spec.cells_period_s,
            "position_s": spec.position_period_s,
            "health_s": spec.health_period_s,
            "batch_s": spec.batch_s,
        }
        self.spec = spec
        self.commands = CommandHandler(device_id, self, command_key)
        self._topics = {kind: topic(fleet, device_id, kind.value) for kind in Kind}
        self._due = dict.fromkeys(("summary_s", "cells_s", "position_s", "health_s"), 0.0)
        self._local_due = {"pack": 0.0, "cells": 0.0, "gps": 0.0}  # logger and GPS polling
        self.clock_epoch_s = clock_epoch_s
        self._resume_s = {kind: queue.produced_until_s(kind) - clock_epoch_s for kind in Kind}
        self._unstored: list[tuple[Kind, float, dict[str, Any]]] = []  # held by a disk error
        self._pending: list[tuple[Kind, float, dict[str, Any]]] = []  # until the next commit
        self._committed_s = 0.0
        self._radio: list[_Message] = []
        self._in_flight: dict[int, _Message] = {}
        self._seen_disconnects = 0
        self._seen_connects = 0
        self._last_ping_s = 0.0
        self._now_s = 0.0
        self._started_s: float | None = None
        self._queued_at_end: dict[str, int] = {}
        self._hold_until_s = 0.0
        self.gps, self.gps_reader = _gps(spec.gps, sector, seed)
        self.fix = None
        self.geofences = GeofenceMonitor(
            [Geofence(f.name, f.latitude_deg, f.longitude_deg, f.radius_m)
             for f in spec.gps.geofences]
        )  # fmt: skip
        if queue.recovered:
            self.stats.errors.append(queue.recovered)
            self._edge_event(0.0, "QUEUE_RECOVERED", queue.recovered)

    # --- the periodic task ------------------------------------------------------------------
    @property
    def tick_period_s(self) -> float:
        """How often ``tick`` runs: the data logger's pack rate with a logger, otherwise the
        fastest telemetry rate up to ``MAX_TICK_S`` (rates set faster later are held to it)."""
        if self.logger is not None:
            return self.spec.logger.pack_period_s
        fastest = min(self.rates_s[name] for name in ("summary_s", "cells_s", "position_s"))
        return min(fastest, MAX_TICK_S)

    def tick(self, now_s: float) -> None:
        """Produce what is due, then move records towards the broker.

        The edge is not part of the protection: whatever goes wrong in it is recorded and the
        BMS's tasks carry on (the next tick tries again).
        """
        self._now_s = now_s
        if self._started_s is None:
            self._started_s = now_s
        try:
            self._produce(now_s)
            if self.uplink is not None:
                self._link(now_s)
        except Exception as error:  # never let telemetry stop the BMS
            self.stats.tick_failures += 1
            message = f"edge tick failed at {now_s:.0f} s: {type(error).__name__}: {error}"
            if message not in self.stats.errors[-5:]:
                self.stats.errors.append(message)

    def _produce(self, now_s: float) -> None:
        items: list[tuple[Kind, float, dict[str, Any]]] = []
        for event in self.source.drain_events():
            items.append((Kind.EVENT, event["time_s"], event))
            self._log("event", event)
        log_pack = self.logger is not None and self._take_due(
            "pack", now_s, self.spec.logger.pack_period_s, self._local_due
        )
        wanted = log_pack or now_s >= self._due["summary_s"]
        summary = self.source.summary(now_s) if wanted else None
        if summary is not None and log_pack:
            self._log("pack", summary)
        if summary is not None and self._take_due("summary_s", now_s):
            items.append((Kind.SUMMARY, now_s, summary))
        cells = None
        if self._take_due("cells_s", now_s):
            cells = self.source.cells(now_s)
            if cells is not None:
                items.append((Kind.CELLS, now_s, cells))
        if self.logger is not None and self._take_due(
            "cells", now_s, self.spec.logger.snapshot_period_s, self._local_due
        ):
            cells = cells or self.source.cells(now_s)
            if cells is not None:
                self._log("cells", cells)
        self._gps(now_s, items)
        if self._take_due("health_s", now_s):
            items.append((Kind.HEALTH, now_s, self._health(now_s)))
        self._store(items)

    def _take_due(self, name: str, now_s: float, period_s: float | None = None,
                  due: dict[str, float] | None = None) -> bool:  # fmt: skip
        due = self._due if due is None else due
        if now_s < due[name]:
            return False
        period_s = self.rates_s[name] if period_s is None else period_s
        following = due[name] + period_s
        due[name] = following if following > now_s else now_s + period_s  # re-anchor when late
        return True

    def _gps(self, now_s: float, items: list) -> None:
        # a vehicle's receiver is read every few seconds (geofences); a site's when a fix is due
        poll_s = (
            self.rates_s["position_s"] if self.gps is not None and self.gps.is_site else GPS_POLL_S
        )
        if self.gps is None or not self._take_due("gps", now_s, poll_s, self._local_due):
            return
        speed_kmh = 0.0
        if not self.gps.is_site:
            speed_kmh = speed_from_power_kmh(
                self.source.discharge_power_w(), self.spec.gps.consumption_wh_per_km,
                self.spec.gps.max_speed_kmh,
            )  # fmt: skip
        for line in self.gps.sentences(now_s, speed_kmh):
            fix = self.gps_reader.feed(line, now_s)
            if fix is not None:
                self.fix = fix
        if self.fix is None or not self.fix.valid:
            return
        for crossing in self.geofences.update(self.fix):
            event = {
                "time_s": now_s, "source": "gps", "code": f"GEOFENCE_{crossing.kind.upper()}",
                "name": f"{crossing.kind} {crossing.fence}", "kind": "info", "value": None,
                "action": "", "freeze_frame": {"distance_m": crossing.distance_m},
            }  # fmt: skip
            items.append((Kind.EVENT, now_s, event))
            self._log("event", event)
        if self._take_due("position_s", now_s):
            fix = self.fix
            items.append((Kind.POSITION, now_s, {
                "time_s": now_s, "latitude_deg": fix.latitude_deg,
                "longitude_deg": fix.longitude_deg, "speed_kmh": fix.speed_kmh,
                "course_deg": fix.course_deg, "satellites": fix.satellites, "hdop": fix.hdop,
            }))  # fmt: skip

    def _health(self, now_s: float) -> dict[str, Any]:
        return {
            "time_s": now_s,
            "link_up": int(self.link.up(now_s)),
            "signal_dbm": self.link.profile.signal_dbm,
            "queue_records": self.queue.records,
            "queue_bytes": self.queue.stored_bytes,
            "dropped_records": sum(self.queue.dropped.values()),
            "logger_dropped": self.logger.dropped if self.logger else 0,
            "bytes_sent": self.link.bytes_sent,
        }

    def _store(self, items: list[tuple[Kind, float, dict[str, Any]]], force: bool = False) -> None:
        """Records go to the queue in one transaction per ``queue_commit_s`` (flash wears with
        every sync); events and replies, and whatever a disk error held back, go at once."""
        epoch_s = self.clock_epoch_s
        self._pending += [
            (kind, time_s + epoch_s, {**record, "time_s": record["time_s"] + epoch_s})
            for kind, time_s, record in items
            if not self._reproduced((kind, time_s, record))
        ]
        if not (self._pending or self._unstored):
            return
        urgent = force or bool(self._unstored)
        urgent = urgent or any(PRIORITY[kind] is Priority.KEEP for kind, _, _ in self._pending)
        if not urgent and self._now_s - self._committed_s < self.spec.queue_commit_s:
            return
        batch = [*self._unstored, *self._pending]
        self._unstored, self._pending = [], []
        self._committed_s = self._now_s
        try:
            self.queue.put(batch)
        except QueueError as error:
            self._queue_error(str(error), batch)
            return
        for kind, _, _ in batch:
            self.stats.produced[kind.value] += 1

    def _reproduced(self, item: tuple[Kind, float, dict[str, Any]]) -> bool:
        """A record the last run had already stored (after a restart the deterministic
        simulation produces it again); replies and the edge's own events are never repeats."""
        kind, time_s, record = item
        if kind is Kind.REPLY or (kind is Kind.EVENT and record.get("source") == "edge"):
            return False
        return time_s <= self._resume_s[kind]

    def _queue_error(self, message: str, items: list) -> None:
        """Keep events and replies in memory to retry; count the rest as not stored."""
        if not self.stats.errors or self.stats.errors[-1] != message:
            self.stats.errors.append(message)
        for item in items:
            if PRIORITY[item[0]] is Priority.KEEP and len(self._unstored) < MAX_UNSTORED:
                self._unstored.append(item)
            else:
                self.stats.not_stored[item[0].value] += 1

    def _log(self, kind: str, record: dict[str, Any]) -> None:
        if self.logger is not None and record["time_s"] > self._resume_s[Kind.SUMMARY]:
            self.logger.append(kind, record["time_s"], record)

    def _note(self, message: str) -> None:
        """Keep a problem for the run's summary (once while it repeats)."""
        if message not in self.stats.errors[-10:]:
            self.stats.errors.append(message)

    def _edge_event(self, now_s: float, code: str, message: str) -> None:
        """An event of the edge itself, held to be stored at once (on the record clock)."""
        time_s = now_s + self.clock_epoch_s
        event = {"time_s": time_s, "source": "edge", "code": code, "name": message,
                 "kind": "info", "value": None, "action": "", "freeze_frame": {}}  # fmt: skip
        self._unstored.append((Kind.EVENT, time_s, event))

    # --- the link ----------------------------------------------------------------------------
    def _link(self, now_s: float) -> None:
        uplink = self.uplink
        assert uplink is not None
        up = self.link.up(now_s)
        if not up:
            uplink.drop()
        elif not uplink.started:
            uplink.start()
        self._acks()
        if uplink.disconnects != self._seen_disconnects:
            self._seen_disconnects = uplink.disconnects
            self._release_all()
        if uplink.connects != self._seen_connects:
            self._seen_connects = uplink.connects
            self._count_session()
        for problem in (uplink.last_error, self.queue.last_error):
            if problem:
                self._note(problem)
        if not (up and uplink.connected):
            return
        self._commands(now_s)
        self._keepalive(now_s)
        self._transmit(now_s)
        if now_s >= self._hold_until_s:
            self._send_due(now_s, force=False)

    def _acks(self) -> None:
        """Remove what the broker acknowledged since the last tick, in one transaction."""
        uplink = self.uplink
        assert uplink is not None
        done: list[_Message] = []
        while uplink.acks:
            ack = uplink.acks.popleft()
            message = self._in_flight.pop(ack.mid, None)
            if message is None:
                continue  # status or subscription traffic
            if ack.refused is not None:
                self._note(f"broker refused {message.topic}: {ack.refused}")
                self.queue.release(message.seqs)
                self._hold_until_s = self._now_s + REFUSED_HOLD_S  # do not spend the link
                continue
            self.link.count(puback_bytes(), message.kind.value)
            done.append(message)
        if not done:
            return
        try:
            self.queue.ack([seq for message in done for seq in message.seqs])
        except QueueError as error:
            self.stats.errors.append(str(error))
            return
        for message in done:
            self.stats.acknowledged[message.kind.value] += len(message.seqs)

    def _release_all(self) -> None:
        self.queue.release()
        self._in_flight.clear()
        self._radio.clear()

    def _commands(self, now_s: float) -> None:
        uplink = self.uplink
        assert uplink is not None
        replies = []
        while uplink.commands:
            reply = self.commands.handle(uplink.commands.popleft(), now_s)
            self.stats.commands += 1
            replies.append((Kind.REPLY, now_s, reply))
        self._store(replies)

    def _keepalive(self, now_s: float) -> None:
        if now_s - self._last_ping_s >= KEEPALIVE_S:
            self._last_ping_s = now_s
            self.link.count(PING_EXCHANGE_BYTES, "session")

    def _count_session(self) -> None:
        uplink = self.uplink
        assert uplink is not None
        broker = uplink.broker
        size = (
            connect_bytes(self.device_id, broker.username, broker.password, uplink.status_topic,
                          OFFLINE)
            + connack_bytes() + subscribe_bytes(uplink.command_topic) + suback_bytes()
            + publish_bytes(uplink.status_topic, len(uplink.online_payload)) + puback_bytes()
        )  # fmt: skip
        self.link.count(size, "session")

    def _transmit(self, now_s: float) -> None:
        """Hand to MQTT what the radio has carried by now."""
        uplink = self.uplink
        assert uplink is not None
        waiting = []
        for message in self._radio:
            if message.arrival_s > now_s:
                waiting.append(message)
                continue
            mid = uplink.publish(message.topic, message.payload)
            if mid is None:
                self.queue.release(message.seqs)
                continue
            self._in_flight[mid] = message
            self.stats.messages_sent += 1
        self._radio = waiting

    def _send_due(self, now_s: float, force: bool) -> None:
        """Batch waiting records of each kind that is due and start them over the radio."""
        limit = self.spec.max_batch_records
        for kind in SEND_ORDER:
            while len(self._radio) + len(self._in_flight) < MAX_MESSAGES_IN_FLIGHT:
                oldest = self.queue.oldest_time_s(kind)
                if oldest is None:
                    break
                due = force or PRIORITY[kind] is Priority.KEEP
                due = due or now_s - oldest >= self.rates_s["batch_s"]
                if not due and self.queue.waiting(kind) < limit:
                    break
                records = self.queue.take(kind, limit)
                seqs = [r.seq for r in records]
                try:
                    payload = codec.encode(kind, [(r.seq, r.record) for r in records],
                                           self.debug_json)  # fmt: skip
                except (ValueError, TypeError) as error:
                    self.queue.release(seqs)
                    self._note(f"cannot encode {kind.value} records {seqs[0]}..: {error}")
                    break
                name = self._topics[kind]
                arrival_s = self.link.carry(now_s, publish_bytes(name, len(payload)), kind.value)
                if arrival_s is None:
                    self.queue.release(seqs)
                    return
                self._radio.append(_Message(kind, seqs, name, payload, arrival_s))

    # --- commands ----------------------------------------------------------------------------
    def set_rates(self, rates_s: dict[str, float]) -> dict[str, float]:
        self.rates_s.update(rates_s)
        for name in rates_s:
            if name in self._due:
                self._due[name] = float("-inf")  # at the next tick, then at the new rate
        if "position_s" in rates_s:
            self._local_due["gps"] = float("-inf")  # a site's receiver is read at that rate
        return dict(self.rates_s)

    def snapshot(self, now_s: float) -> dict[str, Any]:
        items = []
        for kind, record in ((Kind.SUMMARY, self.source.summary(now_s)),
                             (Kind.CELLS, self.source.cells(now_s))):  # fmt: skip
            if record is not None:
                items.append((kind, now_s, record))
        self._store(items)
        return {"time_s": now_s, "records": [kind.value for kind, _, _ in items]}

    def dtc_memory(self) -> dict[str, Any]:
        return plain(self.source.dtc_memory())

    def clear_faults(self, now_s: float) -> dict[str, Any]:
        cleared = self.source.clear_latched(now_s)
        self._edge_event(now_s, "LATCHES_CLEARED", f"latched faults cleared remotely: {cleared}")
        return {"cleared": cleared}

    # --- the end -----------------------------------------------------------------------------
    def finish(self, drain_wall_s: float = 10.0) -> None:
        """Send what is waiting (the link permitting), then go offline and close the files."""
        self._store([], force=True)
        uplink = self.uplink
        if uplink is not None:
            deadline = time.monotonic() + drain_wall_s
            now_s = self._now_s
            while time.monotonic() < deadline and self.link.up(now_s):
                self._store([])
                self._acks()
                if uplink.disconnects != self._seen_disconnects:
                    self._seen_disconnects = uplink.disconnects
                    self._release_all()
                if uplink.connected:
                    self._transmit(now_s)
                    self._send_due(now_s, force=True)
                if self.queue.records == 0 and not self._in_flight and not self._radio:
                    break
                time.sleep(0.02)
                now_s += 0.1
            uplink.stop()
        self._queued_at_end = {kind.value: self.queue.waiting(kind) for kind in Kind}
        self.queue.close()
        if self.logger is not None:
            self.logger.close()

    def summary(self) -> dict[str, Any]:
        """Counts by kind and bytes, as ``cellwarden edge run --json`` prints them."""
        elapsed_s = max(self._now_s - (self._started_s or 0.0), 1.0)
        return {
            "device_id": self.device_id,
            "fleet": self.fleet,
            "simulated_s": self._now_s,
            "produced": dict(self.stats.produced),
            "acknowledged": dict(self.stats.acknowledged),
            "queued": {k: v for k, v in self._queued_at_end.items() if v},
            "dropped": {k: v for k, v in self.queue.dropped.items() if v},
            "not_stored": dict(self.stats.not_stored),
            "messages_sent": self.stats.messages_sent,
            "commands": self.stats.commands,
            "tick_failures": self.stats.tick_failures,
            "bytes_sent": self.link.bytes_sent,
            "bytes_by_kind": dict(self.link.bytes_by_kind),
            "bytes_per_30_days": self.link.bytes_sent * 30 * 86400 / elapsed_s,
            "errors": self.stats.errors[-20:],
            "logger_dropped": self.logger.dropped if self.logger else 0,
        }


def _gps(spec: GpsSpec, sector: str, seed: int) -> tuple[SimulatedGps | None, NmeaReader]:
    mode = spec.mode
    if mode == "auto":
        mode = "route" if sector in MOBILE_SECTORS else "site"
    rng = np.random.default_rng([seed, 0x6E55])
    if mode == "none":
        return None, NmeaReader()
    if mode == "site":
        return SimulatedGps.site(spec.latitude_deg, spec.longitude_deg, rng), NmeaReader()
    route = loop_route(spec.latitude_deg, spec.longitude_deg, spec.route_radius_m)
    return SimulatedGps(route, rng=rng, noise_m=1.5), NmeaReader()
