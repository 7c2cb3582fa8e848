"""``cellwarden cloud serve``: the API and dashboard, N ingest worker processes, the scheduler.

Workers are separate processes (decoding is CPU work and Python has one interpreter lock per
process); a worker that dies is started again with the same name, so its MQTT session and
what it had not acknowledged come back with it.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import uvicorn

from cellwarden.cloud.alarms.engine import AlarmEngine
from cellwarden.cloud.alarms.notify import Notifier
from cellwarden.cloud.analytics.scheduled_analytics import run_if_due
from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.ingest.process import WorkerConfig, run_worker
from cellwarden.cloud.passport_lifecycle import update_document
from cellwarden.cloud.scheduler import Job, Scheduler
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.cloud.store.rollup import Retention

log = logging.getLogger(__name__)
SUPERVISE_S = 1.0
ANALYTICS_CHECK_S = 3600.0  # the daily fleet analytics run within this of midnight (UTC)


@dataclass(frozen=True)
class ServeConfig:
    db_url: str
    broker_url: str | None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    worker_prefix: str = "ingest"
    ca_file: Path | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    mail_from: str = "cellwarden@localhost"
    webhook_secret: str | None = None
    retention: Retention = field(default_factory=Retention)


class WorkerPool:
    """N ingest processes kept running."""

    def __init__(self, config: ServeConfig) -> None:
        self.configs = [
            WorkerConfig(config.db_url, config.broker_url, f"{config.worker_prefix}-{i}",
                         ca_file=config.ca_file, stop_with_parent=True)
            for i in range(config.workers if config.broker_url else 0)
        ]  # fmt: skip
        self._context = multiprocessing.get_context("spawn")
        self.processes: list[multiprocessing.Process | None] = [None] * len(self.configs)
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="worker-pool", daemon=True)

    def start(self) -> None:
        for index in range(len(self.configs)):
            self._spawn(index)
        self._thread.start()

    def _spawn(self, index: int) -> None:
        process = self._context.Process(target=run_worker, args=(self.configs[index],),
                                        name=self.configs[index].name, daemon=True)  # fmt: skip
        process.start()
        self.processes[index] = process

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_S):
            for index, process in enumerate(self.processes):
                if process is not None and not process.is_alive() and not self._stop.is_set():
                    log.warning("%s exited with %s; starting it again", process.name,
                                process.exitcode)  # fmt: skip
                    self.restarts += 1
                    if self._stop.wait(min(30.0, 2.0 ** min(self.restarts, 5))):  # back-off
                        return
                    self._spawn(index)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()  # no restart races the shutdown
        for process in self.processes:
            if process is not None and process.is_alive():
                process.terminate()
        for process in self.processes:
            if process is not None:
                process.join(10)
                if process.is_alive():
                    process.kill()


def schedulers_for(store, config: ServeConfig) -> list[Scheduler]:
    """The periodic work, in two threads: the fleet analytics and the passports' refresh (up
    to a minute per fleet once a day) apart, so that rollups, alarms and notifications never
    wait for them."""
    alarms = AlarmEngine(store.db)
    notifier = Notifier(store.db, config.smtp_host, config.smtp_port, config.mail_from,
                        webhook_secret=config.webhook_secret)  # fmt: skip
    return [
        Scheduler([
            Job("rollup and retention", 60.0, store.rollup.run),
            Job("silent packs", 15.0, alarms.check_silence),
            Job("escalation", 15.0, alarms.escalate),
            Job("notifications", 5.0, notifier.deliver_due),
        ]),
        Scheduler(
            [Job("fleet analytics and passports", ANALYTICS_CHECK_S,
                 lambda now_s: run_if_due(store, now_s, partial(update_document, store)))],
            name="cloud-analytics",
        ),
    ]  # fmt: skip


def serve(config: ServeConfig, ready: threading.Event | None = None) -> None:
    """Run until interrupted (SIGINT/SIGTERM stop uvicorn, then the rest)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = open_store(config.db_url, retention=config.retention)  # migrated before workers
    pool = WorkerPool(config)
    schedulers = schedulers_for(store, config)
    server = uvicorn.Server(uvicorn.Config(create_app(store), host=config.host, port=config.port,
                                           log_level="warning"))  # fmt: skip
    pool.start()
    for scheduler in schedulers:
        scheduler.start()
    if ready is not None:
        threading.Thread(target=_signal_when_started, args=(server, ready), daemon=True).start()
    try:
        server.run()
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        pool.stop()
        store.close()


def _signal_when_started(server: uvicorn.Server, ready: threading.Event) -> None:
    while not server.started:
        time.sleep(0.05)
    ready.set()
