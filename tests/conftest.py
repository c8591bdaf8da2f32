import os
import socket

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _own_epoch_cost_cache(tmp_path_factory):
    """Dry runs keep measured epoch costs in a cache (plan.EpochCosts): the tests use their own,
    empty at the start, never the user's."""
    os.environ["SPHERE_SYNTH_CACHE"] = str(tmp_path_factory.mktemp("cache"))


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
