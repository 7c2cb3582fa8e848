"""Store-and-forward: order, acknowledgement, the bound and its priorities, a kill -9 at any
moment, a corrupt file and a full disk."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from cellwarden.edge.store_forward import QUEUE_FILE, QueueError, StoreAndForward
from cellwarden.telemetry.schema import Kind


def record(time_s: float, size: int = 10) -> dict:
    return {"time_s": time_s, "pad": "x" * size}


def test_records_leave_in_order_only_when_acknowledged(tmp_path):
    queue = StoreAndForward(tmp_path)
    seqs = queue.put([(Kind.SUMMARY, t, record(t)) for t in range(5)])
    assert seqs == [1, 2, 3, 4, 5]
    first = queue.take(Kind.SUMMARY, 3)
    assert [r.seq for r in first] == [1, 2, 3]
    assert [r.seq for r in queue.take(Kind.SUMMARY, 3)] == [4, 5]  # in flight ones skipped
    queue.release([2, 3])  # lost with the link: they go again, same numbers
    queue.ack([1])
    assert [r.seq for r in queue.take(Kind.SUMMARY, 10)] == [2, 3]
    queue.ack([2, 3, 4, 5])
    assert queue.records == 0 and queue.stored_bytes == 0
    queue.close()
    reopened = StoreAndForward(tmp_path)
    assert reopened.put([(Kind.EVENT, 9.0, record(9))]) == [6]  # numbering continues
    assert reopened.produced_until_s(Kind.SUMMARY) == 4.0


def test_a_full_queue_thins_detail_then_summaries_and_never_events(tmp_path):
    queue = StoreAndForward(tmp_path, max_bytes=65536)
    events = 0
    for step in range(400):
        items = [(Kind.CELLS, step, record(step, 200)), (Kind.SUMMARY, step, record(step, 60))]
        if step % 10 == 0:
            items.append((Kind.EVENT, step, record(step, 100)))
            events += 1
        queue.put(items)
    assert queue.stored_bytes <= 65536
    assert queue.dropped["event"] == 0
    assert queue.waiting(Kind.EVENT) == events
    assert queue.dropped["cells"] > 0
    # summaries go only once the detail is gone
    assert queue.dropped["summary"] == 0 or queue.waiting(Kind.CELLS) == 0
    # thinning keeps a spread of the oldest detail, not only the newest
    kept = [r.time_s for r in queue.take(Kind.CELLS, 1000)]
    assert kept[0] < 100 and kept == sorted(kept)


def test_events_exceed_the_bound_rather_than_being_dropped(tmp_path):
    queue = StoreAndForward(tmp_path, max_bytes=65536)
    for step in range(300):
        queue.put([(Kind.EVENT, step, record(step, 500))])
    assert queue.waiting(Kind.EVENT) == 300
    assert sum(queue.dropped.values()) == 0


WRITER = """
import sys
from pathlib import Path
from cellwarden.edge.store_forward import StoreAndForward
from cellwarden.telemetry.schema import Kind
queue = StoreAndForward(Path(sys.argv[1]))
step = 0
while True:
    seqs = queue.put([(Kind.SUMMARY, step, {"time_s": step}), (Kind.EVENT, step, {"n": step})])
    print(seqs[-1], flush=True)
    step += 1
"""


@pytest.mark.parametrize("delay_s", [0.3, 0.55, 0.8])
def test_a_kill_9_keeps_everything_put_returned_for(tmp_path, delay_s):
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(delay_s)
    os.kill(child.pid, signal.SIGKILL)
    confirmed = [int(line) for line in child.stdout.read().split()]
    child.wait()
    queue = StoreAndForward(tmp_path)
    assert queue.recovered is None
    stored = [r.seq for kind in (Kind.SUMMARY, Kind.EVENT) for r in queue.take(kind, 10**6)]
    assert len(stored) == len(set(stored))
    assert confirmed, "the writer confirmed nothing"
    assert set(range(1, confirmed[-1] + 1)) <= set(stored)  # nothing confirmed is lost
    assert queue.put([(Kind.EVENT, 0.0, {})])[0] > max(stored)  # and no number is reused


def test_a_corrupt_file_is_set_aside_and_numbers_move_on(tmp_path):
    queue = StoreAndForward(tmp_path)
    last = queue.put([(Kind.EVENT, t, record(t)) for t in range(50)])[-1]
    queue.close()
    (tmp_path / QUEUE_FILE).write_bytes(b"this is not an SQLite file" * 100)
    for name in (QUEUE_FILE + "-wal", QUEUE_FILE + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    fresh = StoreAndForward(tmp_path)
    assert fresh.recovered is not None
    assert "unreadable" in fresh.recovered and "corrupt-1" in fresh.recovered
    assert (tmp_path / f"{QUEUE_FILE}.corrupt-1").exists()
    assert fresh.put([(Kind.EVENT, 0.0, {})])[0] > last


def test_a_full_disk_is_a_named_error_and_the_queue_recovers(tmp_path):
    queue = StoreAndForward(tmp_path)
    queue.put([(Kind.SUMMARY, 0.0, record(0))])
    pages = queue.db.execute("PRAGMA page_count").fetchone()[0]
    queue.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up
    with pytest.raises(QueueError, match="cannot store"):
        for step in range(1, 1000):
            queue.put([(Kind.SUMMARY, step, record(step, 4000))])
    stored = queue.records
    assert stored >= 1 and queue.take(Kind.SUMMARY, 1)[0].seq == 1  # nothing stored is lost
    queue.db.execute("PRAGMA max_page_count = 1073741823")  # space again
    assert queue.put([(Kind.EVENT, 5.0, record(5))])
    assert queue.records == stored + 1


def test_an_unreadable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises((OSError, sqlite3.Error)):
        StoreAndForward(blocker / "queue")


def test_a_locked_queue_is_an_error_not_corruption(tmp_path):
    queue = StoreAndForward(tmp_path)
    queue.put([(Kind.EVENT, 1.0, record(1))])
    queue.close()
    holder = sqlite3.connect(tmp_path / QUEUE_FILE)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(QueueError, match="cannot be opened"):
            StoreAndForward(tmp_path)
    finally:
        holder.rollback()
        holder.close()
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert StoreAndForward(tmp_path).waiting(Kind.EVENT) == 1  # the backlog is still there


def test_an_emptied_queue_file_never_reuses_numbers(tmp_path):
    queue = StoreAndForward(tmp_path)
    last = queue.put([(Kind.EVENT, t, record(t)) for t in range(20)])[-1]
    queue.close()
    for name in (QUEUE_FILE, QUEUE_FILE + "-wal", QUEUE_FILE + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / QUEUE_FILE).write_bytes(b"")  # a valid, empty database without a counter
    assert StoreAndForward(tmp_path).put([(Kind.EVENT, 0.0, {})])[0] > last


def test_the_record_clock_epoch_is_kept_across_restarts(tmp_path):
    first = StoreAndForward(tmp_path, 1 << 20)
    assert first.clock_epoch_s(1_700_000_000.0) == 1_700_000_000.0
    first.close()
    again = StoreAndForward(tmp_path, 1 << 20)
    assert again.clock_epoch_s(1_800_000_000.0) == 1_700_000_000.0  # a restart keeps its times
