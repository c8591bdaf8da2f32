"""The results store: one small class that owns the SQLite schema, connection, writes, resume keys
and queries. Nothing else in the toolkit speaks SQL.

A row is one trained member. Its identity is (experiment, dataset, recipe, dataset seed, encoder,
configuration, training seed, training settings, stage); an *experiment* is one set of training
settings, named by the space it came from plus the settings' hash (``quick-3fa2…``). Tables,
figures and search decisions are always scoped to one experiment, so runs made under different
settings are never pooled.

Writes: each finished population is one short transaction (WAL mode), so killing a sweep at any
moment loses at most the populations in flight and several sweeps may share one file. A writer
that finds the file locked says what it waits for and gives up after ``lock_timeout`` seconds
with one line. Disk-full, read-only and similar errors are one line too; the rows stored before
stay intact (SQLite rolls the transaction back).

Reads (``readonly=True``, what ``report`` uses) open the file read-only and refuse, without
touching it, any file that is not a sphere-synth results database.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import sys
import time
from pathlib import Path
from urllib.parse import quote

from synth import __version__
from synth.errors import SynthError
from synth.params import PATH, ROWS, TEXT, checked, flag, number, one_of, optional

SCHEMA_VERSION = 2
PACKAGE = "sphere-synth"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL, dataset TEXT NOT NULL, recipe_hash TEXT NOT NULL,
    recipe TEXT NOT NULL CHECK (json_valid(recipe)),
    data_seed INTEGER NOT NULL, encoder TEXT NOT NULL, config_hash TEXT NOT NULL,
    config TEXT NOT NULL CHECK (json_valid(config)),
    train_seed INTEGER NOT NULL, settings_hash TEXT NOT NULL, settings TEXT NOT NULL CHECK (json_valid(settings)),
    stage TEXT NOT NULL DEFAULT 'final',
    val_top1 REAL CHECK (val_top1 BETWEEN 0 AND 100 OR (val_top1 IS NULL AND diverged = 1)),
    val_top3 REAL, val_mrr REAL,
    test_top1 REAL CHECK (test_top1 BETWEEN 0 AND 100 OR (test_top1 IS NULL AND (diverged = 1 OR pruned_at IS NOT NULL))),
    test_top3 REAL, test_mrr REAL,
    best_epoch INTEGER, epochs_run INTEGER, bands TEXT,
    diverged INTEGER NOT NULL DEFAULT 0 CHECK (diverged IN (0, 1)),
    trial INTEGER NOT NULL DEFAULT -1, val_curve TEXT,
    pruned_at INTEGER,
    seconds REAL, population INTEGER, device TEXT, code_version TEXT, created REAL,
    UNIQUE (experiment, dataset, recipe_hash, data_seed, encoder, config_hash, train_seed, settings_hash, stage,
            trial)
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, stage, dataset, encoder);
"""
# The CHECKs (new databases) make a damaged row impossible to write; rows() validates what it reads
# (bands and val_curve may hold NaN for an empty band, which Python's JSON reads and SQLite's
# json_valid does not, so those two are checked in Python only)
# in any database (older files, hand edits) and names the row and column of a bad value.
# ``trial`` is the Optuna trial number of a search row (-1 elsewhere): a search may try one
# configuration twice (TPE), and each trial is its own row.
KEY_COLUMNS = ("experiment", "dataset", "recipe_hash", "data_seed", "encoder", "config_hash", "train_seed",
               "settings_hash", "stage", "trial")
VALUE_COLUMNS = ("recipe", "config", "settings", "val_top1", "val_top3", "val_mrr", "test_top1", "test_top3",
                 "test_mrr", "best_epoch", "epochs_run", "bands", "diverged", "val_curve", "pruned_at", "seconds",
                 "population", "device")
_DEFAULTS = {"diverged": 0, "trial": -1, "val_curve": None, "pruned_at": None}
_SQLITE_MAGIC = b"SQLite format 3\x00"
METRICS = ("val_top1", "val_top3", "val_mrr", "test_top1", "test_top3", "test_mrr")
METRIC_MAX = {c: 1.0 if c.endswith("mrr") else 100.0 for c in METRICS}  # Top-k in %, MRR in [0, 1]
JSON_COLUMNS = ("recipe", "config", "settings", "bands", "val_curve")
INTEGER_COLUMNS = ("data_seed", "train_seed", "trial", "best_epoch", "epochs_run", "pruned_at", "population")
_V1_REFUSAL = ("was written by sphere-synth schema 1, whose ranks counted tied logits as correct (a collapsed "
               "model scored 100 %); its scores cannot be trusted: run the sweep again into a new --db")


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def digest(obj) -> str:
    return hashlib.sha1(canonical(obj).encode()).hexdigest()[:16]


class ResultsStore:
    """The results database at ``path`` (created on first write unless ``readonly``)."""

    @checked(path=PATH, readonly=flag(), lock_timeout=number(0))
    def __init__(self, path, readonly: bool = False, lock_timeout: float = 600.0):
        self.path = Path(path)
        self.readonly = readonly
        self.lock_timeout = float(lock_timeout)
        self._announced = False
        if readonly:
            self.conn = self._open_readonly()
        else:
            self.conn = self._open_for_writing()

    # ------------------------------------------------------------------ opening
    def _check_header(self) -> bool:
        """True if the file exists and is non-empty; refuses a file that is not SQLite at all."""
        if not self.path.exists():
            return False
        if self.path.is_dir():
            raise SynthError(f"{self.path} is a folder, not a results database")
        with open(self.path, "rb") as f:
            head = f.read(16)
        if not head:
            return False
        if head != _SQLITE_MAGIC:
            raise SynthError(f"{self.path} is not a usable SQLite results database (not an SQLite file)")
        return True

    def _open_readonly(self):
        if not self.path.exists():
            raise SynthError(f"no results database at {self.path}")
        if not self._check_header():
            raise SynthError(f"{self.path} is empty: not a sphere-synth results database")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            try:
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=self.lock_timeout)
                self._identify(conn, allow_empty=False)
            except sqlite3.OperationalError as e:
                # A WAL database on read-only media (an archive, a read-only mount): SQLite cannot
                # create the -shm file a reader needs. immutable=1 reads the file as it is, which is
                # right only when nobody writes it, as on such media.
                if os.access(self.path.parent, os.W_OK) and "readonly" not in str(e) and "unable to open" not in str(e):
                    raise
                conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
                self._identify(conn, allow_empty=False)
        except sqlite3.DatabaseError as e:
            raise SynthError(f"{self.path} is not a usable SQLite results database ({e})") from None
        return conn

    def _open_for_writing(self):
        existed = self._check_header()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise SynthError(f"cannot create {self.path}: {self.path.parent} is not a folder") from None
        try:
            conn = sqlite3.connect(str(self.path), timeout=1.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 1000")  # short waits, so _locked can report and give up
            if existed:
                self._identify(conn, allow_empty=True)
            self._locked(conn, lambda: self._setup(conn))
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None
        return conn

    def _identify(self, conn, allow_empty: bool) -> None:
        """Refuse, without writing anything, a file that is not a sphere-synth results database."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and allow_empty:
            return
        if not {"meta", "runs"} <= tables:
            raise SynthError(f"{self.path} is not a sphere-synth results database (tables: "
                             f"{', '.join(sorted(tables)) or 'none'}); refusing to touch it")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        try:
            version = int(meta.get("schema_version", 0))
        except (TypeError, ValueError):
            raise SynthError(f"{self.path}: meta.schema_version = {meta.get('schema_version')!r} is not a schema "
                             "number; not a usable sphere-synth results database") from None
        if version == 1:
            raise SynthError(f"{self.path} {_V1_REFUSAL}")
        if meta.get("package") != PACKAGE:
            raise SynthError(f"{self.path} is not a sphere-synth results database; refusing to touch it")
        if version > SCHEMA_VERSION:
            raise SynthError(f"{self.path} was written by a newer sphere-synth (schema {version} > "
                             f"{SCHEMA_VERSION}); upgrade to read it")

    def _setup(self, conn):
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('package', ?)", (PACKAGE,))
        conn.execute("COMMIT")
        self._identify(conn, allow_empty=False)

    # ------------------------------------------------------------------ locking and errors
    def _locked(self, conn, fn):
        """Run ``fn()``; while another process holds the write lock, wait (saying so once) up to
        ``lock_timeout`` seconds, then give up with one line.

        SQLite answers some conflicts at once rather than after its busy timeout, for instance two
        processes switching a new file to WAL at the same moment; those are retried here too."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() >= deadline:
                    raise SynthError(f"gave up after {self.lock_timeout:g} s waiting for the write lock on "
                                     f"{self.path}, held by another process (--lock-timeout)") from None
                if not self._announced:
                    print(f"waiting for the write lock on {self.path}: another process is writing it "
                          f"(giving up after {self.lock_timeout:g} s)", file=sys.stderr, flush=True)
                    self._announced = True
                time.sleep(0.05)

    def _error(self, e: Exception) -> SynthError:
        return SynthError(f"{self.path}: {e}; results stored before are intact")

    # ------------------------------------------------------------------ writes
    def _execute_write(self, sql, values):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(sql, values)
            self.conn.execute("COMMIT")
        except BaseException:  # any failure (overflow, interrupt, disk): never leave the write lock held
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    @checked(rows=ROWS)
    def write_population(self, rows: list[dict]) -> None:
        """Insert (or replace) one population's rows in a single transaction."""
        if self.readonly:
            raise SynthError(f"{self.path} was opened read-only")
        cols = KEY_COLUMNS + VALUE_COLUMNS + ("code_version", "created")
        now = time.time()
        values = [tuple({**_DEFAULTS, **_checked_for_writing(r), "code_version": __version__, "created": now}[c]
                        for c in cols) for r in rows]
        sql = f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        try:
            self._locked(self.conn, lambda: self._execute_write(sql, values))
        except sqlite3.IntegrityError as e:
            raise SynthError(f"{self.path}: a row breaks the schema ({e}); nothing of this population was written") \
                from None
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def set_meta(self, key: str, value: str) -> None:
        """Record one fact about the database's contents (e.g. how an experiment's search decided)."""
        sql = "INSERT OR REPLACE INTO meta VALUES (?, ?)"
        try:
            self._locked(self.conn, lambda: self._execute_write(sql, [(key, value)]))
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def meta(self, key: str) -> str | None:
        row = self._query("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ queries
    def _query(self, sql, args=()):
        try:
            return self.conn.execute(sql, args)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def experiments(self) -> dict:
        """{experiment name: number of rows}."""
        return dict(self._query("SELECT experiment, COUNT(*) FROM runs GROUP BY experiment ORDER BY experiment"))

    def stored_keys(self, experiment: str | None = None) -> set:
        sql = f"SELECT {', '.join(KEY_COLUMNS)} FROM runs"
        args = ()
        if experiment is not None:
            sql, args = sql + " WHERE experiment = ?", (experiment,)
        return {tuple(r) for r in self._query(sql, args)}

    @checked(experiment=optional(TEXT), stage=one_of("search", "final"))
    def rows(self, experiment: str | None, stage: str = "final") -> list[dict]:
        """Every row of one experiment (all experiments if None) and stage."""
        sql, args = "SELECT * FROM runs WHERE stage = ?", (stage,)
        if experiment is not None:
            sql, args = sql + " AND experiment = ?", (stage, experiment)
        cur = self._query(sql + " ORDER BY id", args)
        names = [d[0] for d in cur.description]
        return [_checked_when_read(dict(zip(names, r)), self.path) for r in cur]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _checked_for_writing(row: dict) -> dict:
    """A row as it may be stored: metrics finite in [0, 100] (NULL only for a diverged member, said
    explicitly), integers that fit SQLite, JSON columns that are JSON. One line names the problem."""
    row = dict(row)
    where = f"row of {row.get('encoder')} on {row.get('dataset')} (seed {row.get('train_seed')})"
    diverged = row.get("diverged", 0)
    if diverged not in (0, 1, True, False):
        raise SynthError(f"{where}: diverged = {diverged!r} must be 0 or 1")
    for c in METRICS:
        v = row.get(c)
        bad = v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))
        if not bad and v is not None and not math.isfinite(v):
            if not diverged:
                raise SynthError(f"{where}: {c} = {v!r} but the member is not marked diverged")
            v = None  # a diverged member's non-finite score is stored as NULL, explicitly
        if bad or (v is not None and not 0 <= v <= METRIC_MAX[c]):
            raise SynthError(f"{where}: {c} = {v!r} is not a score")
        row[c] = v
    for c in INTEGER_COLUMNS:
        v = row.get(c)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not -2**63 <= v < 2**63):
            raise SynthError(f"{where}: {c} = {v!r} is not an integer SQLite can store")
    for c in JSON_COLUMNS:
        v = row.get(c)
        if v is not None:
            try:
                json.loads(v)
            except (TypeError, ValueError):
                raise SynthError(f"{where}: {c} is not JSON") from None
    return row


def _checked_when_read(row: dict, path) -> dict:
    """A stored row, validated: a damaged value (hand edits, another tool) is one line naming the
    row and column, never a traceback further on."""
    def bad(column, why):
        return SynthError(f"{path}: row id {row.get('id')} column {column} {why}; fix or delete that row")

    diverged = row.get("diverged")
    if diverged not in (0, 1):
        raise bad("diverged", f"holds {diverged!r}, not 0 or 1")
    for c in METRICS:
        v = row.get(c)
        if v is None:
            if not diverged and (c == "val_top1" or (c == "test_top1" and row.get("pruned_at") is None)):
                raise bad(c, "is NULL for a member that neither diverged nor was pruned")
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(c, f"holds {v!r}, not a number")
        if not 0 <= v <= METRIC_MAX[c]:  # a hand-edited 200 % was reported as a win above the Bayes ceiling
            raise bad(c, f"holds {v!r}, outside [0, {METRIC_MAX[c]:g}]")
    for c in INTEGER_COLUMNS:
        v = row.get(c)
        if v is not None and not isinstance(v, int):
            raise bad(c, f"holds {v!r}, not an integer")
    for c in JSON_COLUMNS:
        v = row.get(c)
        if v is None:
            if c in ("recipe", "config", "settings"):
                raise bad(c, "is NULL")
            continue
        try:
            parsed = json.loads(v)
        except (TypeError, ValueError):
            raise bad(c, "is not JSON") from None
        if c in ("config", "settings", "bands", "recipe") and not isinstance(parsed, dict):
            raise bad(c, "is not a JSON object")
        if c == "val_curve" and not (isinstance(parsed, list) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in parsed)):
            raise bad(c, "is not a list of numbers")
        if c == "bands":
            why = _bad_bands(parsed)
            if why:
                raise bad(c, why)
    return row


def _bad_bands(bands: dict) -> str | None:
    """Why a row's per-band scores cannot be read (None if they can): every kind of bands has n + 1
    edges and n values of each score (a shortened list ended in a traceback in the ablation report)."""
    for kind, b in bands.items():
        if not isinstance(b, dict) or not all(isinstance(b.get(k), list) for k in ("edges", "n", "top1")):
            return f"{kind!r} is not a table of edges, n and top1"
        n = len(b["edges"]) - 1
        if n < 1 or any(len(b[k]) != n for k in ("n", "top1", "mrr") if k in b):
            return f"{kind!r} holds {len(b['top1'])} band value(s) for {n} band(s)"
    return None


def choose_experiment(store: ResultsStore, name: str | None) -> str:
    """The experiment to report: the one named (a full name, or a space name that only one
    experiment has), or the only one; otherwise a one-line error listing them."""
    exps = store.experiments()
    if not exps:
        raise SynthError(f"{store.path} holds no results; run `python -m experiments sweep` first")
    listing = "; ".join(f"{e} ({n} rows)" for e, n in exps.items())
    if name is None:
        if len(exps) > 1:
            raise SynthError(f"{store.path} holds {len(exps)} experiments, name one with --experiment: {listing}")
        return next(iter(exps))
    if name in exps:
        return name
    of_space = [e for e in exps if e.startswith(f"{name}-")]
    if len(of_space) == 1:
        return of_space[0]
    if of_space:
        raise SynthError(f"space {name} has {len(of_space)} experiments in {store.path} (different settings), name "
                         f"one with --experiment: " + "; ".join(f"{e} ({exps[e]} rows)" for e in of_space))
    raise SynthError(f"no experiment {name!r} in {store.path}; it holds: {listing}")
