"""The mog10 prior against its formula in numpy, and the adversarial autoencoder objective: its
discriminator, what training does to the aggregate posterior, plain Pyro SVI, bad input."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch

from guides import DeltaGuide, DiagGuide
from models import GaussianVAE
from pvae.cli import main
from pvae.distributions.priors import MOG_COMPONENTS, MOG_RADIUS, MOG_SCALE, mixture_of_gaussians
from pvae.errors import UserError
from pvae.objectives import AAE, Discriminator


def _mog_log_prob_numpy(z: np.ndarray) -> np.ndarray:
    """log (1/10) sum_k N(z_12; r (cos, sin)(2 pi k / 10), s^2 I) N(z_rest; 0, I), term by term."""
    total = np.zeros(len(z))
    for k in range(MOG_COMPONENTS):
        centre = MOG_RADIUS * np.array([math.cos(2 * math.pi * k / 10), math.sin(2 * math.pi * k / 10)])
        first = -((z[:, :2] - centre) ** 2).sum(1) / (2 * MOG_SCALE**2) - 2 * math.log(
            MOG_SCALE * math.sqrt(2 * math.pi)
        )
        total += np.exp(first) / MOG_COMPONENTS
    rest = -(z[:, 2:] ** 2).sum(1) / 2 - (z.shape[1] - 2) * math.log(math.sqrt(2 * math.pi))
    return np.log(total) + rest


def test_mog10_log_prob_matches_numpy():
    torch.manual_seed(0)
    z = torch.randn(50, 4, dtype=torch.float64) * 3
    prior = mixture_of_gaussians(50, 4, torch.zeros((), dtype=torch.float64))
    np.testing.assert_allclose(prior.log_prob(z).numpy(), _mog_log_prob_numpy(z.numpy()), rtol=1e-10)


def test_mog10_samples_fall_into_ten_equal_modes():
    torch.manual_seed(0)
    z = mixture_of_gaussians(20000, 3, torch.zeros(())).sample().numpy()
    angle = np.arctan2(z[:, 1], z[:, 0]) % (2 * math.pi)
    mode = np.round(angle / (2 * math.pi / 10)).astype(int) % 10
    counts = np.bincount(mode, minlength=10) / len(z)
    np.testing.assert_allclose(counts, 0.1, atol=0.01)
    radius = np.hypot(z[:, 0], z[:, 1])
    assert abs(radius.mean() - MOG_RADIUS) < 0.05
    assert abs(z[:, 2].std() - 1) < 0.03  # the other dimensions are N(0, 1)


def test_discriminator_separates_a_shifted_gaussian():
    torch.manual_seed(0)
    d = Discriminator(2, (32, 32))
    optimiser = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(200):
        prior, other = torch.randn(128, 2), torch.randn(128, 2) + 3
        loss = torch.nn.functional.softplus(-d(prior)).mean() + torch.nn.functional.softplus(d(other)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        prior, other = torch.randn(2000, 2), torch.randn(2000, 2) + 3
        accuracy = ((d(prior) > 0).float().mean() + (d(other) < 0).float().mean()) / 2
    assert accuracy > 0.9  # the Bayes rate for a shift of 3 sqrt(2) is 0.983


def _mmd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared maximum mean discrepancy with a Gaussian kernel of bandwidth 1 (biased estimate)."""

    def k(x, y):
        return torch.exp(-(torch.cdist(x, y) ** 2) / 2).mean()

    return float(k(a, a) + k(b, b) - 2 * k(a, b))


def test_aae_brings_the_aggregate_posterior_to_the_prior(one_thread):
    torch.manual_seed(0)
    pyro.clear_param_store()
    x = (torch.rand(256, 64) < torch.linspace(0.05, 0.6, 64)).float()  # 64-pixel toy images
    model, guide = GaussianVAE(64, latent_dim=2, hidden=(32,)), DeltaGuide(latent_dim=2, data_dim=64, hidden=[32])
    guide.head.weight.data.mul_(0.05)  # start with every code near 0, far from N(0, I) in aggregate
    objective = AAE(latent_dim=2, disc_hidden=(32, 32))
    params = [*model.parameters(), *guide.parameters(), *objective.discriminator.parameters()]
    optimiser = torch.optim.Adam(params, lr=3e-3)

    def distance() -> float:
        with torch.no_grad():
            return _mmd(guide.posterior(x).mean, torch.randn(256, 2))

    before = distance()
    for step in range(400):
        loss = objective.differentiable_loss(model.model, guide.guide, x[(step % 4) * 64 :][:64])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = distance()
    assert after < 0.5 * before, (before, after)


def test_plain_pyro_svi_trains_with_the_aae_objective():
    torch.manual_seed(0)
    pyro.clear_param_store()
    model, guide = GaussianVAE(16, latent_dim=2, hidden=(8,), prior="mog10"), DiagGuide(2, data_dim=16, hidden=[8])
    svi = pyro.infer.SVI(
        model.model, guide.guide, pyro.optim.Adam({"lr": 1e-2}), loss=AAE(latent_dim=2, num_particles=2)
    )
    x = (torch.rand(32, 16) < 0.3).float()
    losses = [svi.step(x) for _ in range(5)]
    assert all(math.isfinite(v) for v in losses)
    names = set(pyro.get_param_store().keys())
    assert any(n.startswith("aae_discriminator$$$") for n in names) and any(n.startswith("guide$$$") for n in names)


def test_aae_needs_a_latent_site_to_sample():
    def no_latent(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", pyro.distributions.Normal(0.0, 1.0).expand([x.shape[0], 3]).to_event(1), obs=x)

    with pytest.raises(UserError, match="needs a model with a latent site 'z'"):
        AAE(latent_dim=2).differentiable_loss(no_latent, lambda x: None, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="adversarial_weight must not be negative"):
        AAE(adversarial_weight=-1.0)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--adversarial-weight", "-1"], "--adversarial-weight -1.0: must be at least 0"),
        (["--kl-weight", "0.5"], "--kl-weight 0.5: --objective aae (no KL term) does not use it"),
        (["--prior", "mog10", "--latent-dim", "1"], "the mog10 prior needs at least 2 latent dimensions"),
        (["--objective", "elbo", "--disc-lr-ratio", "2"], "--disc-lr-ratio 2.0: --objective elbo does not use it"),
    ],
)
def test_bad_input_is_one_line(flags, message, tmp_path, capsys):
    args = ["train", "--objective", "aae", "--data", "digits:32", "--steps", "1", *flags]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_aae_run_resumes_with_its_discriminator(tmp_path, one_thread):
    run = str(tmp_path / "r")
    args = ["train", "--objective", "aae", "--prior", "mog10", "--latent-dim", "2", "--hidden", "16"]
    args += ["--data", "digits:64", "--batch-size", "16", "--disc-hidden", "8", "--disc-lr-ratio", "0.5"]
    assert main([*args, "--steps", "4", "--out", run, "--no-progress"]) == 0
    state = torch.load(f"{run}/checkpoint.pt", weights_only=True)
    assert any(k.endswith("net.0.weight") for k in state["objective"])
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [1e-3, 0.5e-3]
    assert main(["train", "--resume", "--out", run, "--steps", "8", "--no-progress"]) == 0
