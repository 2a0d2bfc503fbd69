"""Run store: round trip, live reading, schema version, corruption, malformed metadata,
heartbeat staleness, the one-writer lock (threads here; processes in test_resume)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from geomviz.store import (
    LOCK_FILE,
    SCHEMA_VERSION,
    STORE_FILE,
    RunLocked,
    RunWriter,
    StoreError,
    list_runs,
    open_run,
)
from tests.helpers import set_meta_raw


def test_round_trip_and_live_reads(tmp_path):
    w = RunWriter(tmp_path / "a", {"name": "a", "config": {"lr": 0.1}}, heartbeat_s=0.1)
    w.scalars(1, {"loss": 2.0, "acc": 0.5}, split="train", epoch=0)
    w.histogram(1, "norm", np.array([1, 2, 3]), np.array([0.0, 1.0, 2.0, 4.0]))
    feats = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float16)
    w.array(1, "features", feats)
    with open_run(tmp_path / "a") as r:
        assert r.scalars("loss")["value"].size == 0  # nothing before the first flush
        w.flush()
        assert r.status == "running" and r.meta["config"] == {"lr": 0.1}
        s = r.scalars("loss")
        assert s["step"].tolist() == [1] and s["value"].tolist() == [2.0]
        w.scalars(2, {"loss": float("nan")}, split="test", epoch=0)
        w.flush()
        assert np.isnan(r.scalars("loss", split="test")["value"][0])
        assert r.scalars("loss", split="train")["value"].tolist() == [2.0]
        h = r.histograms("norm")
        assert h.counts.tolist() == [[1, 2, 3]] and h.edges.tolist() == [0, 1, 2, 4]
        got = r.arrays("features")[1]
        assert got.dtype == np.float16 and np.array_equal(got, feats)
        assert r.steps().tolist() == [1, 2] and r.scalar_names() == ["acc", "loss"]
        df = r.scalars("loss", frame=True)
        assert list(df.columns) == ["step", "epoch", "split", "value"] and len(df) == 2
    w.close("finished")
    assert open_run(tmp_path / "a").status == "finished"
    assert list_runs(tmp_path) == [tmp_path / "a"]


def test_histogram_edges_are_fixed_per_name(tmp_path):
    w = RunWriter(tmp_path, {})
    w.histogram(0, "h", [1, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="fixed"):
        w.histogram(1, "h", [1, 1], [0, 1, 3])
    with pytest.raises(ValueError, match="edges"):
        w.histogram(1, "g", [1, 1, 1], [0, 1])
    w.close()


def test_stale_running_store_reads_as_crashed(tmp_path):
    w = RunWriter(tmp_path, {}, heartbeat_s=0.1)
    w.flush()
    w._stop.set()  # the heartbeat dies as it would with the process
    w._beat.join()
    time.sleep(0.5)
    assert open_run(tmp_path, stale_after=0.3).status == "crashed"
    assert open_run(tmp_path, stale_after=60).status == "running"


def test_existing_store_is_not_overwritten(tmp_path):
    RunWriter(tmp_path, {}).close()
    with pytest.raises(StoreError, match="already exists"):
        RunWriter(tmp_path, {})


def test_unknown_schema_version_is_refused(tmp_path):
    RunWriter(tmp_path, {}).close()
    con = sqlite3.connect(tmp_path / STORE_FILE)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                (json.dumps(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        open_run(tmp_path)


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""])
def test_corrupt_or_foreign_files_are_clear_errors(tmp_path, content):
    (tmp_path / STORE_FILE).write_bytes(content)
    with pytest.raises(StoreError):
        open_run(tmp_path)
    with pytest.raises(StoreError, match="no run store"):
        open_run(tmp_path / "missing")
    with pytest.raises(StoreError, match="does not exist"):
        list_runs(tmp_path / "nowhere")


def test_resume_drops_rows_after_the_checkpoint(tmp_path):
    w = RunWriter(tmp_path, {})
    w.scalars(10, {"loss": 1.0})
    w.scalars(20, {"loss": 0.5})
    w.flush()
    w._stop.set()
    w._run_lock.release()  # what the OS does when the writer's process dies
    w = RunWriter(tmp_path, {}, resume=True, drop_after_step=10)
    w.close()
    assert open_run(tmp_path).scalars("loss")["step"].tolist() == [10]


def test_a_resumed_writer_replaces_rows_of_kept_steps_never_doubles_them(tmp_path):
    """A resumed run writes some rows of steps it keeps again (the probe set's labels at
    step 0, at every resume): each replaces the stored row, so no row is stored twice."""
    def write(w):
        w.array(0, "snapshot.labels", np.arange(3))
        w.scalars(0, {"loss": 2.0})
        w.histogram(0, "h", [1], [0.0, 1.0])
        w.flush()

    w = RunWriter(tmp_path, {})
    write(w)
    w.scalars(10, {"loss": 1.0})
    w.flush()
    w._stop.set()
    w._run_lock.release()  # the writer's process died
    for _ in range(2):  # two resumes from step 10
        w = RunWriter(tmp_path, {}, resume=True, drop_after_step=10)
        write(w)
        w.close()
    con = sqlite3.connect(tmp_path / STORE_FILE)
    counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("arrays", "scalars", "histograms")]
    assert counts == [1, 2, 1]


def test_restart_empties_the_store_but_keeps_it(tmp_path):
    w = RunWriter(tmp_path, {"name": "old", "stale": 1})
    w.scalars(10, {"loss": 1.0})
    w.histogram(10, "h", [1], [0.0, 1.0])
    w.array(10, "a", np.zeros(2))
    w.flush()
    w._stop.set()
    w._run_lock.release()
    created = open_run(tmp_path).meta["created"]
    time.sleep(0.01)
    w = RunWriter(tmp_path, {"name": "new"}, restart=True)
    w.close()
    with open_run(tmp_path) as r:
        assert r.steps().tolist() == [] and r.arrays("a") == {}
        meta = r.meta
        assert meta["name"] == "new" and "stale" not in meta and meta["created"] > created
        with pytest.raises(KeyError):
            r.histograms("h")


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    w = RunWriter(tmp_path, {})
    with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
        RunWriter(tmp_path, {}, resume=True)
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    w.close()  # releases the lock: a resume may follow
    RunWriter(tmp_path, {}, resume=True).close()


def test_writers_started_in_the_same_instant_one_wins(tmp_path):
    """The lock is taken before the 'already exists' check: of 8 threads starting the same
    new run at once, exactly one writes it and the others get one clear error each."""
    barrier = threading.Barrier(8)
    won, errors = [], []

    def start(i: int) -> None:
        barrier.wait()
        try:
            won.append((i, RunWriter(tmp_path / "run", {"who": i})))
        except StoreError as e:
            errors.append(e)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(errors) == 7
    assert all(("already exists" in str(e) or "pid" in str(e)) and "locked" not in str(e)
               for e in errors)
    who, writer = won[0]
    writer.close()
    assert open_run(tmp_path / "run").meta["who"] == who




@pytest.mark.parametrize("key,value,message", [
    ("status", None, "status is 'missing'"),
    ("status", '"weird"', "status is 'weird'"),
    ("config", "{not json", "value of 'config' is not JSON"),
    ("schema_version", "one", "is not JSON"),
])
def test_malformed_metadata_is_one_store_error(tmp_path, key, value, message):
    RunWriter(tmp_path, {"config": {}}).close()
    set_meta_raw(tmp_path, key, value)
    with pytest.raises(StoreError, match=message) as e:
        open_run(tmp_path)
    assert "\n" not in str(e.value)


def test_array_names_lists_without_reading(tmp_path):
    from geomviz.store import RunWriter, open_run

    w = RunWriter(tmp_path / "r", {"name": "r"})
    for step in (0, 5):
        w.array(step, "snapshot.norm", np.ones(3, dtype=np.float32))
    w.array(0, "snapshot.labels", np.zeros(3, dtype=np.int64))
    w.array(0, "eval.confidence.msp.id", np.zeros(2, dtype=np.float32))
    w.close("finished")
    with open_run(tmp_path / "r") as run:
        assert run.array_names("snapshot.") == ["snapshot.labels", "snapshot.norm"]
        assert len(run.array_names()) == 3 and run.array_names("nope") == []


@contextlib.contextmanager
def _unwritable(folder):
    """``folder`` made unwritable for this process (as on a read-only mount or another
    user's runs): chmod, or for root (whom modes do not stop) the immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a folder unwritable here (root, and no chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_finished_store_in_a_folder_that_cannot_be_written_is_readable(tmp_path):
    """SQLite cannot make a WAL index (``-shm``) beside it: with no log to replay, the store
    is read as it is; a log left by a killed writer is one StoreError line, never ignored."""
    w = RunWriter(tmp_path / "done", {"config": {}})
    w.scalars(5, {"loss": 0.5})
    w.close()
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["run.lock", STORE_FILE]
    with _unwritable(tmp_path / "done"):
        with open_run(tmp_path / "done") as run:
            assert run.meta["status"] == "finished"
            assert run.scalars("loss")["value"].tolist() == [0.5]
    killed = tmp_path / "killed"  # a writer killed after a flush: rows in its log only
    subprocess.run([sys.executable, "-c", "import os, sys; from geomviz.store import RunWriter; "
                    "w = RunWriter(sys.argv[1], {}); w.scalars(5, {'loss': 0.5}); w.flush(); "
                    "os._exit(0)", str(killed)], check=True, timeout=120,
                   env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                       [str(Path(__file__).resolve().parents[1]),
                        os.environ.get("PYTHONPATH", "")])))
    (killed / f"{STORE_FILE}-shm").unlink()
    with _unwritable(killed):
        with pytest.raises(StoreError, match="needs its index"):
            open_run(killed)
    with pytest.raises(StoreError, match="a reader creates no file"):
        open_run(killed)  # a writable folder too: the reader never makes the -shm
    assert not (killed / f"{STORE_FILE}-shm").exists()
    sqlite3.connect(killed / STORE_FILE).execute("PRAGMA quick_check").fetchall()
    with open_run(killed) as run:  # once opened for writing, nothing was lost
        assert run.scalars("loss")["value"].tolist() == [0.5]


def test_a_full_disk_is_one_store_error_naming_the_store(tmp_path):
    w = RunWriter(tmp_path, {})
    pages = w._con.execute("PRAGMA page_count").fetchone()[0]
    w._con.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own 'disk is full'
    w.array(1, "big", np.zeros(100_000))
    with pytest.raises(StoreError, match=r"run.sqlite: cannot write \(database or disk is "
                       r"full\)") as e:
        w.flush()
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)
    with pytest.raises(StoreError, match="cannot write"):
        w.close("crashed")  # the rows still do not fit, but the status is written
    assert open_run(tmp_path).meta["status"] == "crashed"
    RunWriter(tmp_path, {}, resume=True).close()  # and the lock was released
