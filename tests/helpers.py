"""What several test files share: running the CLI, reading rows, the tiny space."""

import sqlite3
import subprocess
import sys

# How long a test waits for a child process to reach a state (rows stored, a worker started, a job
# running) before it gives up. Generous, because a loaded machine makes slow progress (120 s ran out
# beside a background search, 2026-11-30); the loops stop as soon as the state is reached, so a
# passing run waits no longer.
WAIT_S = 600

TINY_SPACE = """
description = "test"
[settings]
epochs = 2
patience = 5
batch_size = 512
[grid]
lr = [0.01, 0.02]
hidden_dim = [16]
num_filts = [8]
[encoders.grid]
frequency_num = [4]
min_radius = [1.0, 5.0]
"""

# four learning rates of xyz, epochs to fill in: the executor and fault tests
SPACE_4_LR = """
[settings]
epochs = {epochs}
patience = 100
batch_size = 1024
[grid]
lr = [0.005, 0.01, 0.02, 0.05]
hidden_dim = [32]
num_filts = [16]
"""

# one configuration per encoder (lr, widths), epochs to fill in: ablation and plugin tests
ONE_CONFIG = """
[settings]
epochs = {epochs}
patience = 100
batch_size = 1024
[grid]
lr = [0.02]
hidden_dim = [32]
num_filts = [16]
"""


def experiments(*args, **kw):
    return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True, text=True, **kw)


def sweep(*args, **kw):
    return experiments("sweep", "--no-progress", "--device", "cpu", *args, **kw)


def one_line(r, word="") -> bool:
    """Exit status 2 and a single `error:` line on stderr that contains ``word``."""
    lines = r.stderr.strip().splitlines()
    return r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and word in lines[0]


def count_rows(db, stage=None) -> int:
    """Rows in a results database (0 while it does not exist yet or is being created)."""
    sql, args = "SELECT COUNT(*) FROM runs", ()
    if stage is not None:
        sql, args = sql + " WHERE stage = ?", (stage,)
    try:
        return sqlite3.connect(db).execute(sql, args).fetchone()[0]
    except sqlite3.DatabaseError:
        return 0
