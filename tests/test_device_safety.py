"""GPU code checked without a GPU: the whole hot path runs on torch's ``meta`` device.

A meta tensor has a shape and a device but no data, so any tensor made on the wrong device (the
default CPU) fails the first operation that mixes it with a meta tensor, and any value read back
to the host (``.item()``, ``bool(tensor)``, NumPy) fails too: in the training loop such a read is a
device-to-host sync per step on a GPU. These tests found three: dropout and Adam tested a device
tensor every step, and rbf copied anchor points through NumPy."""

import pytest
import torch

from experiments.models import encoders
from experiments.models.members import MemberRNG
from experiments.models.train import (PopulationAdam, epoch_batches, presence_absence_loss, predict_logits, random_locations,
                               softmax_loss)
from synth.metrics import true_class_ranks

META = torch.device("meta")


@pytest.mark.parametrize("name", encoders.available())
def test_the_training_step_and_scoring_run_on_the_meta_device(name):
    rng = MemberRNG([0, 1], META, mode="counter")  # the GPU back-end of the member streams
    hp = dict(hidden_dim=8, num_filts=8) if encoders.spec(name).network == "ffn" else {}
    if name == "rbf":
        hp["anchor_points"] = torch.zeros(300, 2, dtype=torch.float64, device=META)
    model = encoders.build(name, 5, rng=rng, seed=[0, 1], **hp).to(META)
    model.position_encoder.check_inputs = False  # validation reads values back; the trainer does it once, on the host
    x = torch.zeros(2, 16, 2, dtype=torch.float64, device=META)
    y = torch.zeros(2, 16, dtype=torch.int64, device=META)
    neg = random_locations(rng, 16)
    logits = model(torch.cat([x, neg], 1))
    assert logits.device == META and logits.shape == (2, 32, 5)
    loss = presence_absence_loss(logits[:, :16], logits[:, 16:], y, 5.0) + softmax_loss(logits[:, :16], y)
    adam = PopulationAdam(model.parameters(), torch.full((2,), 1e-3, device=META), torch.full((2,), 1e-4, device=META),
                          decay=True)
    loss.sum().backward()
    adam.step()
    assert all(p.device == META for p in model.parameters())
    assert all(idx.device == META for idx in epoch_batches(rng, 40, 16))
    logits = predict_logits(model, torch.zeros(10, 2, dtype=torch.float64, device=META))
    ranks = true_class_ranks(logits, torch.zeros(10, dtype=torch.int64, device=META))
    assert ranks.device == META and ranks.shape == (2, 10)


def test_a_cpu_tensor_in_the_hot_path_would_fail_here():
    # the check can fail: a tensor left on the CPU meets a meta tensor
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.zeros(2, 3, device=META) + torch.ones(2, 3)
