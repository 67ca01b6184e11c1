"""Content hashes of cached checkpoints and datasets."""

import torch

from hirelc.integrity import record_digest, state_digest, verify_digest


def test_a_batchnorm_state_with_its_0_dim_counter_hashes_and_verifies(tmp_path):
    # num_batches_tracked is a 0-dim int64: hashing it once raised, and every cached
    # checkpoint of a model with BatchNorm was then judged invalid and retrained
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.BatchNorm1d(2))
    state = model.state_dict()
    path = tmp_path / "m.pt"
    record_digest(path, state_digest(state))
    assert verify_digest(path, state_digest(state)) is True
    state["1.num_batches_tracked"] += 1
    assert verify_digest(path, state_digest(state)) is False
