"""Custom distributions against numpy and against torch's own."""

from __future__ import annotations

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from pvae.distributions import BernoulliImage


def test_bernoulli_image_log_prob_matches_numpy_and_torch():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 7, dtype=torch.float64) * 4
    x = torch.bernoulli(torch.full((4, 7), 0.4, dtype=torch.float64))  # broadcasts over the leading 3
    d = BernoulliImage(logits)
    assert d.batch_shape == (3, 4) and d.event_shape == (7,)
    got = d.log_prob(x)
    p = 1 / (1 + np.exp(-logits.numpy()))
    expected = (x.numpy() * np.log(p) + (1 - x.numpy()) * np.log1p(-p)).sum(-1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    torch.testing.assert_close(got, dist.Bernoulli(logits=logits).to_event(1).log_prob(x))
    torch.testing.assert_close(d.entropy(), dist.Bernoulli(logits=logits).to_event(1).entropy())


def test_bernoulli_image_shapes_sampling_and_validation():
    logits = torch.randn(5, 10)
    d = BernoulliImage(logits)
    assert d.expand((2, 5)).batch_shape == (2, 5)
    assert d.sample((3,)).shape == (3, 5, 10)
    torch.testing.assert_close(d.mean, torch.sigmoid(logits))
    big = BernoulliImage(torch.full((20000, 3), 1.0)).sample()
    assert set(big.unique().tolist()) == {0.0, 1.0}
    assert big.mean().item() == pytest.approx(float(torch.sigmoid(torch.tensor(1.0))), abs=0.01)
    with pytest.raises(ValueError):
        BernoulliImage(logits, validate_args=True).log_prob(torch.full((5, 10), 0.5))
