"""An ingest worker as a process of its own (``cloud serve --workers N`` starts N of them)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from cellwarden.cloud.ingest.mqtt_source import MqttSource
from cellwarden.cloud.ingest.worker import IngestWorker
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.telemetry.broker_url import BrokerUrl


@dataclass(frozen=True)
class WorkerConfig:
    db_url: str
    broker_url: str
    name: str  # also the MQTT client id: a restarted worker resumes its session
    group: str = "ingest"
    ca_file: Path | None = None
    receive_maximum: int = 1000
    alarms: bool = True
    stop_with_parent: bool = False  # set by ``cloud serve`` for the workers it starts


def _stop_with_parent(parent_pid: int, stop: threading.Event) -> None:
    """A worker started by ``cloud serve`` ends when serve is gone (even if it was killed)."""
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            stop.set()


def run_worker(config: WorkerConfig) -> None:
    """Ingest until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {config.name} %(message)s")
    store = open_store(config.db_url, upgrade=False)
    on_stored = None
    if config.alarms:
        from cellwarden.cloud.alarms.engine import AlarmEngine

        on_stored = AlarmEngine(store.db).evaluate
    worker = IngestWorker(store, config.name, on_stored)
    source = MqttSource(
        BrokerUrl.parse(config.broker_url), config.name, config.group, config.ca_file,
        config.receive_maximum,
    )  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if config.stop_with_parent:
        watch = threading.Thread(target=_stop_with_parent, args=(os.getppid(), stop), daemon=True)
        watch.start()
    source.start()
    try:
        worker.run(source, stop)
    finally:
        source.stop()
        store.close()
