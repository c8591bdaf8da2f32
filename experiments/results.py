"""The results database: embedded SQLite in WAL mode, one row per trained member.

A row is keyed by (dataset, dataset seed, encoder, configuration, training seed, training
settings, stage). Each finished population is written in one short transaction, so killing a
sweep at any moment loses at most the populations in flight, and several sweeps may write the
same file at once (SQLite serialises writers; WAL lets readers proceed; the busy timeout makes a
writer wait its turn instead of failing). No transaction is ever held open across training.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from synth import __version__
from synth.errors import SynthError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL, data_seed INTEGER NOT NULL, encoder TEXT NOT NULL,
    config_hash TEXT NOT NULL, config TEXT NOT NULL, train_seed INTEGER NOT NULL,
    settings_hash TEXT NOT NULL, settings TEXT NOT NULL, stage TEXT NOT NULL DEFAULT 'final',
    val_top1 REAL, val_top3 REAL, val_mrr REAL, test_top1 REAL, test_top3 REAL, test_mrr REAL,
    best_epoch INTEGER, epochs_run INTEGER, bands TEXT,
    seconds REAL, population INTEGER, device TEXT, code_version TEXT, created REAL,
    UNIQUE (dataset, data_seed, encoder, config_hash, train_seed, settings_hash, stage)
);
CREATE INDEX IF NOT EXISTS runs_by_dataset ON runs (dataset, encoder, stage);
"""
KEY_COLUMNS = ("dataset", "data_seed", "encoder", "config_hash", "train_seed", "settings_hash", "stage")


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def digest(obj) -> str:
    return hashlib.sha1(canonical(obj).encode()).hexdigest()[:16]


def _retry_locked(conn, fn, tries: int = 60):
    """Run ``fn()``, retrying while another process holds the lock.

    The busy timeout covers ordinary writes, but SQLite answers some lock conflicts at once, for
    instance two processes switching a new file to WAL at the same moment (seen here: 6 of 30
    four-process races failed before this retry)."""
    for attempt in range(tries):
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if "locked" not in str(e) or attempt == tries - 1:
                raise
            time.sleep(min(0.05 * 2 ** attempt, 2.0))


def _setup(conn, path):
    conn.execute("PRAGMA busy_timeout = 120000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    for statement in filter(str.strip, _SCHEMA.split(";")):
        conn.execute(statement)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute("COMMIT")
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise SynthError(f"{path} was written by a newer sphere-synth (schema {row[0]} > {SCHEMA_VERSION}); "
                         "upgrade to read it")


def connect(path, create: bool = True) -> sqlite3.Connection:
    path = Path(path)
    if not create and not path.exists():
        raise SynthError(f"no results database at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=120.0, isolation_level=None)
        _retry_locked(conn, lambda: _setup(conn, path))
    except sqlite3.DatabaseError as e:
        raise SynthError(f"{path} is not a usable SQLite results database ({e})") from None
    return conn


def stored_keys(conn) -> set:
    q = f"SELECT {', '.join(KEY_COLUMNS)} FROM runs"
    return {tuple(r) for r in conn.execute(q)}


def write_population(conn, rows: list[dict]) -> None:
    """Insert (or replace) one population's rows in a single transaction."""
    cols = KEY_COLUMNS + ("config", "settings", "val_top1", "val_top3", "val_mrr", "test_top1", "test_top3",
                          "test_mrr", "best_epoch", "epochs_run", "bands", "seconds", "population", "device",
                          "code_version", "created")
    now = time.time()
    values = [tuple({**r, "code_version": __version__, "created": now}[c] for c in cols) for r in rows]
    sql = f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

    def write():
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, values)
        conn.execute("COMMIT")

    _retry_locked(conn, write)


def fetch(conn, stage: str = "final") -> list[dict]:
    cur = conn.execute("SELECT * FROM runs WHERE stage = ?", (stage,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur]
