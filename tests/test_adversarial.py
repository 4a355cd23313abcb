"""The mog10 prior against its formula in numpy, and the adversarial autoencoder objective: its
discriminator, what training does to the aggregate posterior, plain Pyro SVI, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

from guides import DeltaGuide, DiagGuide
from models import GaussianVAE
from pvae.cli import main
from pvae.distributions.priors import MOG_COMPONENTS, MOG_RADIUS, MOG_SCALE, mixture_of_gaussians
from pvae.errors import UserError
from pvae.objectives import AAE, ALI, Discriminator, make_objective
from pvae.train import TrainConfig, Trainer


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
    objective = AAE(latent_dim=2, disc_hidden=(32, 32), adversarial_weight=1.0)  # about 1 per 64 pixels
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
    for group in state["optimizer"]["param_groups"]:  # a checkpoint of an earlier version has no ratios
        del group["lr_ratio"]
    torch.save(state, f"{run}/checkpoint.pt")
    config = TrainConfig(**{**json.loads(Path(run, "config.json").read_text())["train"], "steps": 5})
    trainer = Trainer(config, run, progress=False)
    seen = []
    step = trainer.svi.step
    trainer.svi.step = lambda *a, **k: (
        seen.append({k: v.clone() for k, v in trainer.svi.module.networks.state_dict().items()}) or step(*a, **k)
    )
    trainer.train(resume=True)
    for name, value in state["objective"].items():  # the resumed run starts from the saved discriminator
        torch.testing.assert_close(seen[0][name], value)
    assert [g["lr"] for g in trainer.svi.optimizer.param_groups] == [1e-3, 0.5e-3]


@pytest.mark.parametrize("model, flags", [("completion", []), ("cvae", ["--learned-prior"])])
def test_adversarial_objectives_refuse_a_learned_prior(model, flags, tmp_path, capsys):
    args = ["train", "--objective", "aae", "--model", model, *flags, "--data", "digits:32", "--steps", "1"]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "samples p(z) without training it" in err and err.count("\n") == 1


def test_label_regularised_prior_is_the_labels_component():
    torch.manual_seed(0)
    model = GaussianVAE(16, latent_dim=3, hidden=(8,), num_classes=10, prior="mog10", label_regularised=True)
    y = torch.tensor([0, 3, 7])
    z = torch.randn(3, 3, dtype=torch.float32)
    # component k alone: N(z_12; r (cos, sin)(2 pi k / 10), s^2 I) N(z_3; 0, 1)
    angle = 2 * math.pi * y.double() / 10
    centre = MOG_RADIUS * torch.stack([angle.cos(), angle.sin()], -1)
    expected = (
        -((z[:, :2].double() - centre) ** 2).sum(1) / (2 * MOG_SCALE**2)
        - 2 * math.log(MOG_SCALE * math.sqrt(2 * math.pi))
        - z[:, 2].double() ** 2 / 2
        - math.log(math.sqrt(2 * math.pi))
    )
    np.testing.assert_allclose(model.prior(3, y).log_prob(z).double().numpy(), expected.numpy(), rtol=1e-5)
    x = (torch.rand(3, 16) < 0.3).float()
    assert torch.equal(model.likelihood(z, y).log_prob(x), model.likelihood(z, (y + 1) % 10).log_prob(x))
    assert not model.guide_reads_labels
    with pytest.raises(ValueError, match="label_regularised needs the mog10 prior"):
        GaussianVAE(16, latent_dim=3, num_classes=10, label_regularised=True)


def test_label_regularised_aae_trains_with_a_label_free_guide_and_a_labelled_discriminator(tmp_path, one_thread):
    run = tmp_path / "r"
    args = ["train", "--objective", "aae", "--prior", "mog10", "--latent-dim", "2", "--guide", "delta"]
    args += ["--conditional", "--label-regularised", "--data", "digits:64", "--steps", "3", "--hidden", "16"]
    assert main([*args, "--batch-size", "16", "--out", str(run), "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["guide"]["kwargs"]["num_classes"] == 0 and config["model"]["kwargs"]["num_classes"] == 10
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["objective"]["0.net.0.weight"].shape[1] == 2 + 10  # D reads [z, onehot(y)]
    assert main(["sample", str(run)]) == 0  # one draw of p(z | y) per cell: the decoder reads no label


def test_each_player_gets_only_its_own_gradient():
    """AAE: the guide descends -log p(x | z) + w softplus(-D(z)) with D fixed; D descends
    w [softplus(-D(z')) + softplus(D(z))] with z fixed; written out by hand from the same draws."""
    torch.manual_seed(0)
    model, guide = GaussianVAE(16, latent_dim=2, hidden=(8,)), DiagGuide(2, data_dim=16, hidden=[8])
    aae = AAE(latent_dim=2, disc_hidden=(8,), adversarial_weight=3.0)
    d = aae.discriminator
    x = (torch.rand(5, 16) < 0.4).float()
    players = {"guide": list(guide.parameters()), "model": list(model.parameters()), "d": list(d.parameters())}
    torch.manual_seed(1)
    loss = aae.differentiable_loss(model.model, guide.guide, x)
    ours = {k: torch.autograd.grad(loss, v, retain_graph=True) for k, v in players.items()}
    torch.manual_seed(1)  # the same draws: z ~ q(z | x) first, then z' ~ p(z), each with a particle dim
    z = guide.posterior(x).rsample((1,))
    prior_z = model.prior(5).sample((1,))
    autoencoder = (-model.likelihood(z).log_prob(x) + 3.0 * torch.nn.functional.softplus(-d(z))).sum()
    judge = 3.0 * (torch.nn.functional.softplus(-d(prior_z)) + torch.nn.functional.softplus(d(z.detach()))).sum()
    expected = {
        "guide": torch.autograd.grad(autoencoder, players["guide"], retain_graph=True),
        "model": torch.autograd.grad(autoencoder, players["model"], retain_graph=True),
        "d": torch.autograd.grad(judge, players["d"]),
    }
    for player in players:
        for a, b in zip(ours[player], expected[player]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_ali_trains_model_guide_and_discriminator_in_plain_svi():
    torch.manual_seed(0)
    pyro.clear_param_store()
    model, guide = GaussianVAE(16, latent_dim=2, hidden=(8,)), DiagGuide(2, data_dim=16, hidden=[8])
    svi = pyro.infer.SVI(model.model, guide.guide, pyro.optim.Adam({"lr": 1e-2}), loss=ALI(data_dim=16, latent_dim=2))
    x = (torch.rand(32, 16) < 0.3).float()
    losses = [svi.step(x)]  # registers the parameters
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    losses += [svi.step(x) for _ in range(2)]
    assert all(math.isfinite(v) for v in losses)
    store = pyro.get_param_store()
    for prefix in ("model$$$decoder", "guide$$$trunk", "ali_discriminator$$$"):
        names = [k for k in store.keys() if k.startswith(prefix)]
        assert names and all(not torch.equal(store[k], before[k]) for k in names), prefix


def test_ali_reads_images_only(tmp_path, capsys):
    args = ["train", "--objective", "ali", "--model", "sketch", "--guide", "rnn", "--data", "glyphs", "--steps", "1"]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "--objective ali reads image data" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, first_layers, inputs",
    [
        ("aae", ["net.0"], [4]),
        ("ali", ["x_branch.0", "z_branch.0"], [24, 4]),
        ("lfvi", ["x_branch.0", "z_branch.0"], [24, 4]),
    ],
)
def test_plain_pyro_svi_sizes_the_discriminator_from_its_first_input(name, first_layers, inputs):
    """Latent 4 and 24 pixels (neither the old defaults): D's first layers are sized from the first
    z (and x) it reads, before Pyro's optimiser sees their parameters, which then train."""
    torch.manual_seed(0)
    model, guide = GaussianVAE(24, latent_dim=4, hidden=(8,)), DiagGuide(4, data_dim=24, hidden=[8])
    objective = make_objective(name, 1)
    svi = pyro.infer.SVI(model.model, guide.guide, pyro.optim.Adam({"lr": 1e-2}), loss=objective)
    x = (torch.rand(16, 24) < 0.3).float()
    losses = [svi.step(x)]
    layers = [objective.discriminator.get_submodule(path) for path in first_layers]
    assert all(type(first) is torch.nn.Linear for first in layers) and [f.in_features for f in layers] == inputs
    before = [first.weight.detach().clone() for first in layers]
    losses += [svi.step(x) for _ in range(2)]
    assert all(math.isfinite(v) for v in losses)
    for path, first, old in zip(first_layers, layers, before):
        assert not torch.equal(first.weight, old)
        assert pyro.get_param_store()[f"{name}_discriminator$$${path}.weight"] is first.weight


@pytest.mark.parametrize(
    "objective, message",
    [
        (AAE(latent_dim=2), "aae: latent_dim=2, but the guide's z has 4 values"),
        (ALI(data_dim=22, latent_dim=4), "ali: data_dim=22, but each x has 24 values"),
        (ALI(data_dim=24, latent_dim=3), "ali: latent_dim=3, but the guide's z has 4 values"),
    ],
)
def test_a_discriminator_of_the_wrong_size_is_one_line(objective, message):
    model, guide = GaussianVAE(24, latent_dim=4, hidden=(8,)), DiagGuide(4, data_dim=24, hidden=[8])
    with pytest.raises(UserError, match=message) as error:
        objective.differentiable_loss(model.model, guide.guide, torch.zeros(5, 24))
    assert "\n" not in str(error.value) and len(str(error.value)) < 200
