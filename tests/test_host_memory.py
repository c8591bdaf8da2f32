"""The trainer keeps freed host memory for its next step (experiments.models.host_memory).

Each check runs in fresh processes: the allocator's setting is process-wide and cannot be undone,
so "before" (``SPHERE_SYNTH_MALLOC=system``, the C library as it was) and "after" are two
interpreters running the same code.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's")

# A population's training step allocates and frees blocks of megabytes (here 4 members x 2048 points x
# width 256 x 4 bytes = 8 MiB): the C library maps each afresh or trims the heap under them, and the
# next step faults every page in again; kept, the next step reuses them
FAULTS = """
import json, resource
from synth import datasets
from experiments.models.host_memory import keep_freed_memory
from experiments.models.train import TrainSettings, train_population
data = datasets.generate(datasets.Recipe(name="faults", n_classes=10, samples_per_class=300, kappa_max=8), 0)
cfg = [dict(frequency_num=16, min_radius=0.05, num_hidden_layers=1, hidden_dim=256, num_filts=256, dropout=0.5,
            lr=0.01, seed=s) for s in range(4)]
train = lambda: train_population(data, "sphereM+", cfg, TrainSettings(epochs=2, patience=None), device="cpu")
train()  # the first population sizes the heap
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    train()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps([keep_freed_memory(), faults]))  # the trainer set it (or not) on its first call
"""

TRAIN = """
import json, sys
from synth import datasets
from experiments.models.train import TrainSettings, train_population
r = datasets.Recipe(name="tiny", n_classes=6, samples_per_class=60, kappa_max=8)
cfg = [dict(frequency_num=4, min_radius=0.05, num_hidden_layers=1, hidden_dim=32, num_filts=16, dropout=0.5,
            lr=lr, seed=s) for lr, s in ((0.01, 1), (0.003, 2))]
out = train_population(datasets.generate(r, 0), "sphereM+", cfg, TrainSettings(epochs=3, batch_size=64), device="cpu")
print(json.dumps([[m.loss_curve, m.val, m.test, m.bands] for m in out]))
"""


def _run(code: str, allocator: str):
    env = dict(os.environ, SPHERE_SYNTH_MALLOC=allocator)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    kept, faults_kept = _run(FAULTS, "keep")
    untouched, faults_system = _run(FAULTS, "system")
    assert kept and not untouched
    # the C library's own behaviour: every step faults tens of thousands of pages in again (about
    # 150 000 in these three trainings here); kept, a few thousand at most, while the heap's holes
    # settle where the next blocks need them, and often none
    assert faults_system > 50000
    assert faults_kept < faults_system / 5


def test_training_is_bit_identical_with_either_allocator():
    # where a tensor's memory comes from changes no number: every loss, score and band the same
    assert _run(TRAIN, "keep") == _run(TRAIN, "system")
