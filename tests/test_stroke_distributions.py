"""The stroke-5 distributions against a brute-force numpy double loop over steps and components."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pvae.distributions.strokes import StrokeSequence, StrokeStep, sketch_lengths


def _params(b: int, t: int, m: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        mix_logits=torch.randn(b, t, m, generator=g, dtype=torch.float64),
        loc=torch.randn(b, t, m, 2, generator=g, dtype=torch.float64),
        scale=torch.rand(b, t, m, 2, generator=g, dtype=torch.float64) + 0.3,
        rho=torch.rand(b, t, m, generator=g, dtype=torch.float64) * 1.8 - 0.9,
        pen_logits=torch.randn(b, t, 3, generator=g, dtype=torch.float64),
    )


def _sketches(b: int, t: int, lengths: list[int], seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = np.zeros((b, t, 5))
    for i, n in enumerate(lengths):
        x[i, :n, :2] = rng.normal(size=(n, 2))
        pen = rng.integers(0, 2, n)
        pen[-1] = 1
        x[i, np.arange(n), 2 + pen] = 1
        x[i, n:, 4] = 1
    return torch.tensor(x)


def _numpy_log_prob(p: dict, x: np.ndarray, mask_pen: bool) -> np.ndarray:
    """sketch-rnn's reconstruction log-likelihood, one step and one component at a time."""
    b, t, m = p["mix_logits"].shape
    out = np.zeros(b)
    for i in range(b):
        n = next((s for s in range(t) if x[i, s, 4] == 1), t)
        for s in range(t):
            if s < n:
                pis = np.exp(p["mix_logits"][i, s]) / np.exp(p["mix_logits"][i, s]).sum()
                total = 0.0
                for j in range(m):
                    mx, my = p["loc"][i, s, j]
                    sx, sy = p["scale"][i, s, j]
                    r = p["rho"][i, s, j]
                    u, v = (x[i, s, 0] - mx) / sx, (x[i, s, 1] - my) / sy
                    z = u * u + v * v - 2 * r * u * v
                    total += pis[j] * math.exp(-z / (2 * (1 - r * r))) / (2 * math.pi * sx * sy * math.sqrt(1 - r * r))
                out[i] += math.log(total)
            if not mask_pen or s <= n:
                q = np.exp(p["pen_logits"][i, s]) / np.exp(p["pen_logits"][i, s]).sum()
                out[i] += float((x[i, s, 2:] * np.log(q)).sum())
    return out


@pytest.mark.parametrize("mask_pen", [False, True])
def test_sequence_log_prob_matches_numpy_double_loop(mask_pen):
    b, t, m = 3, 7, 4
    params = _params(b, t, m)
    x = _sketches(b, t, [3, 7, 1])
    d = StrokeSequence(StrokeStep(**params), mask_pen=mask_pen)
    assert d.batch_shape == (b,) and d.event_shape == (t, 5)
    expected = _numpy_log_prob({k: v.numpy() for k, v in params.items()}, x.numpy(), mask_pen)
    np.testing.assert_allclose(d.log_prob(x).numpy(), expected, rtol=1e-10)


def test_log_prob_is_stable_for_extreme_parameters():
    params = _params(2, 4, 3)
    params["scale"] = params["scale"] * 1e-9  # floored
    params["rho"] = torch.full_like(params["rho"], 1.0)  # clamped
    x = _sketches(2, 4, [4, 2])
    lp = StrokeSequence(StrokeStep(**params)).log_prob(x)
    assert torch.isfinite(lp).all()


def test_lengths_and_broadcasting():
    x = _sketches(3, 6, [2, 6, 4])
    assert sketch_lengths(x).tolist() == [2, 6, 4]
    step = StrokeStep(**_params(3, 6, 2))
    seq = StrokeSequence(step.expand((5, 3, 6)))
    assert seq.batch_shape == (5, 3) and seq.log_prob(x).shape == (5, 3)


def test_step_sampling_statistics_and_temperature():
    torch.manual_seed(0)
    n = 200000
    step = StrokeStep(
        mix_logits=torch.tensor([0.0, math.log(3.0)]),
        loc=torch.tensor([[-4.0, 0.0], [4.0, 1.0]]),
        scale=torch.tensor([[0.5, 0.5], [1.0, 2.0]]),
        rho=torch.tensor([0.0, 0.6]),
        pen_logits=torch.log(torch.tensor([0.7, 0.2, 0.1])),
    )
    s = step.sample((n,))
    assert s.shape == (n, 5)
    assert s[:, 2:].sum(-1).eq(1).all()
    np.testing.assert_allclose(s[:, 2:].mean(0).numpy(), [0.7, 0.2, 0.1], atol=0.01)
    second = s[s[:, 0] > 0.5]  # almost only the second component
    assert len(second) / n == pytest.approx(0.75, abs=0.01)
    corr = np.corrcoef(second[:, 0].numpy(), second[:, 1].numpy())[0, 1]
    assert corr == pytest.approx(0.6, abs=0.02)
    assert second[:, 1].std().item() == pytest.approx(2.0, abs=0.05)
    # temperature 0.25: variance x 0.25 (std x 0.5), and sharper mixture and pen weights
    cold = step.sample((n,), temperature=0.25)
    cold_second = cold[cold[:, 0] > 0.5]
    assert cold_second[:, 1].std().item() == pytest.approx(1.0, abs=0.03)
    assert len(cold_second) / n == pytest.approx(81 / 82, abs=0.005)  # 3^4 : 1
    assert cold[:, 2].mean().item() == pytest.approx(0.7**4 / (0.7**4 + 0.2**4 + 0.1**4), abs=0.005)


def test_sequence_sample_pads_after_the_end():
    torch.manual_seed(0)
    params = _params(4, 9, 2)
    params["pen_logits"][..., 2] = 0.5
    s = StrokeSequence(StrokeStep(**params)).sample()
    lengths = sketch_lengths(s)
    for i, n in enumerate(lengths.tolist()):
        assert (s[i, n:, 4] == 1).all() and (s[i, n:, :4] == 0).all()
