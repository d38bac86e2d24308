"""Easy/hard bucket metrics."""

import pytest
import torch

from fastgrpo.algo.metrics import bucket_metrics


def test_bucket_metrics_hand_values():
    acc = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    lengths = torch.tensor([[10.0, 30.0], [4.0, 6.0], [100.0, 200.0]])
    hard = torch.tensor([False, False, True])
    kl = torch.tensor([0.0055, 0.01, 0.001])
    think = torch.tensor([[0.5, 0.0], [0.2, 0.0], [0.25, 0.5]])
    kept = torch.tensor([True, False, True])
    m = bucket_metrics(acc, lengths, hard, kl_coef=kl, thinking_reward=think, kept=kept, threshold=0.42)
    assert m["all/num_groups"] == 3 and m["easy/num_groups"] == 2 and m["hard/num_groups"] == 1
    assert m["easy/accuracy"] == pytest.approx(0.75)
    assert m["hard/accuracy"] == pytest.approx(0.0)
    assert m["easy/response_length"] == pytest.approx(12.5)
    assert m["hard/response_length"] == pytest.approx(150.0)
    assert m["hard/response_length_max"] == pytest.approx(200.0)
    assert m["easy/kl_coef"] == pytest.approx(0.00775)
    assert m["hard/thinking_reward"] == pytest.approx(0.375)
    assert m["easy/filtered_fraction"] == pytest.approx(0.5)
    assert m["hard/filtered_fraction"] == pytest.approx(0.0)
    assert m["all/accuracy"] == pytest.approx(0.5)
    assert m["difficulty/threshold"] == pytest.approx(0.42)
    assert m["difficulty/hard_fraction"] == pytest.approx(1 / 3)
    assert all(isinstance(v, float) for v in m.values())


def test_empty_bucket_reports_only_count():
    m = bucket_metrics([[1.0, 0.0]], [[3.0, 5.0]], [False])
    assert m["hard/num_groups"] == 0.0
    assert not any(k.startswith("hard/") and k != "hard/num_groups" for k in m)
    assert "easy/kl_coef" not in m  # not given


def test_shape_validation():
    with pytest.raises(ValueError):
        bucket_metrics([[1.0, 0.0]], [[3.0, 5.0]], [False, True])
    with pytest.raises(ValueError):
        bucket_metrics([[1.0, 0.0]], [[3.0, 5.0]], [False], kl_coef=[0.1, 0.2, 0.3])
