"""The cloud's periodic work: rollups and retention, silent packs, escalation, notifications."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    period_s: float
    run: Callable[[float], object]  # gets the wall time now
    due_s: float = 0.0


class Scheduler:
    """Runs each job every ``period_s`` in one background thread; a failing job is logged and
    tried again next period, the others go on."""

    def __init__(self, jobs: list[Job], clock: Callable[[], float] = time.time,
                 name: str = "cloud-scheduler") -> None:  # fmt: skip
        self.jobs = jobs
        self.clock = clock
        self.failures: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def run_due(self) -> None:
        now_s = self.clock()
        for job in self.jobs:
            if now_s < job.due_s:
                continue
            job.due_s = now_s + job.period_s
            try:
                job.run(now_s)
                self.failures.pop(job.name, None)
            except Exception as error:
                self.failures[job.name] = f"{type(error).__name__}: {error}"
                log.exception("scheduled job %s failed", job.name)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.run_due()
