"""Easy/hard bucket metrics."""

import pytest
import torch

from fastgrpo.algo.metrics import bucket_metrics, filtered_fraction


def test_bucket_metrics_hand_values():
    acc = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    lengths = torch.tensor([[10.0, 30.0], [4.0, 6.0], [100.0, 200.0]])
    hard = torch.tensor([False, False, True])
    kl = torch.tensor([0.0055, 0.01, 0.001])
    think = torch.tensor([[0.5, 0.0], [0.2, 0.0], [0.25, 0.5]])
    m = bucket_metrics(acc, lengths, hard, kl_coef=kl, thinking_reward=think, threshold=0.42)
    assert m["all/num_groups"] == 3 and m["easy/num_groups"] == 2 and m["hard/num_groups"] == 1
    assert m["easy/accuracy"] == pytest.approx(0.75)
    assert m["hard/accuracy"] == pytest.approx(0.0)
    assert m["easy/response_length"] == pytest.approx(12.5)
    assert m["hard/response_length"] == pytest.approx(150.0)
    assert m["hard/response_length_max"] == pytest.approx(200.0)
    assert m["easy/kl_coef"] == pytest.approx(0.00775)
    assert m["hard/thinking_reward"] == pytest.approx(0.375)
    assert m["all/accuracy"] == pytest.approx(0.5)
    assert m["difficulty/threshold"] == pytest.approx(0.42)
    assert m["difficulty/hard_fraction"] == pytest.approx(1 / 3)
    assert all(isinstance(v, float) for v in m.values())


def test_filtered_fraction_per_bucket_of_candidates():
    hard = torch.tensor([False, False, True, False])
    kept = torch.tensor([True, False, True, False])
    assert filtered_fraction(hard, kept) == pytest.approx({"easy/filtered_fraction": 2 / 3,
                                                           "hard/filtered_fraction": 0.0})
    assert filtered_fraction([False, False], [True, False]) == {"easy/filtered_fraction": 0.5}  # no hard key
    with pytest.raises(ValueError, match="kept must have 2 entries"):
        filtered_fraction([False, True], [True])


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
