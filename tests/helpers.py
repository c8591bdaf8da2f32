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


def _needs_own_process(args) -> bool:
    """A plugin registers encoders (and an environment variable) for the whole process, and worker
    executors are tested for what happens to processes: those calls get a process of their own."""
    return "--plugin" in args or any(a == "--executor" and b != "inline" for a, b in zip(args, args[1:]))


def experiments(*args, **kw):
    """``python -m experiments ARGS``, as a ``subprocess.CompletedProcess``.

    Run in this process unless the call needs a process of its own or passes subprocess options
    (``env``, ``cwd``, ``timeout``, ...): a new interpreter spends about 1.5 s importing torch and
    the rest, a third of the test suite's time when every call paid it. What the tests check (one
    ``error:`` line, exit status 2, the rows written) is ``experiments.cli.main``'s in both; output
    written straight to file descriptor 2 by C code is not captured here. The tests of what a real
    process does (killed drivers and workers, plugins, executors, SIGTERM) still start one."""
    args = [str(a) for a in args]
    kw = {k: v for k, v in kw.items() if v is not None}  # env=None, cwd=None: as if not given
    if kw or _needs_own_process(args):
        return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True, text=True, **kw)
    import contextlib
    import io
    import signal

    from experiments.cli import main

    out, err = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)  # main() turns SIGTERM into Ctrl-C for its process
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as e:  # argparse's errors, --help and --version
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        finally:
            signal.signal(signal.SIGTERM, sigterm)
    return subprocess.CompletedProcess(["experiments", *args], code, out.getvalue(), err.getvalue())


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
