import os
import socket

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# How long a test waits for a child process to reach a state (rows stored, a worker started, a job
# running) before it gives up. Generous, because a loaded machine makes slow progress (120 s ran out
# beside a background search, 2026-11-30); the loops stop as soon as the state is reached, so a
# passing run waits no longer.
WAIT_S = 600


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection (maps must draw offline)."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
