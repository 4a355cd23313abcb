"""Conditional image VAEs: the class-conditional VAE (``cvae``, or ``gaussian --conditional``) and the
completion CVAE, their CLI and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guides.mlp import MLPGuide
from models.completion_cvae import CompletionCVAE, hidden_mask
from models.cvae import CVAE
from models.gaussian_vae import GaussianVAE
from pvae import runs
from pvae.cli import main
from pvae.distributions import BernoulliImage
from pvae.errors import UserError
from pvae.kinds.image.digits import load_digits
from pvae.kinds.image.figures import class_samples
from pvae.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cvae") / "run"
    args = ["--model", "cvae", "--data", "digits:3000", "--epochs", "6", "--latent-dim", "2", "--hidden", "128"]
    assert main(["train", *args, "--out", str(run), "--no-progress"]) == 0
    return run


def test_cvae_draws_the_requested_class(cvae_run):
    """A classifier-free check: generated digits lie nearest the mean image of the requested class."""
    _, model, _ = runs.load_run(cvae_run)
    train = load_digits(3000).split("train")
    means = torch.stack([train.images[train.labels == c].mean(0) for c in range(10)])  # (10, D)
    torch.manual_seed(0)
    labels = torch.arange(10).repeat_interleave(20)
    images = class_samples(model, labels)  # (200, D) pixel means
    nearest = torch.cdist(images, means).argmin(1)
    accuracy = float((nearest == labels).float().mean())
    print(f"nearest-class-mean accuracy {accuracy:.2f}")
    assert accuracy > 0.4, accuracy  # chance is 0.1; real test digits score 0.67 with it

    z = torch.randn(1, 2)
    three, seven = class_samples(model, torch.tensor([3]), z), class_samples(model, torch.tensor([7]), z)
    assert (three - seven).abs().sum() > 10  # same style, different content


def test_cvae_cli_sample_inspect_bounds(cvae_run, capsys):
    assert main(["sample", str(cvae_run), "--label", "3", "-n", "20"]) == 0
    assert (cvae_run / "sample" / "n=20,label=3,seed=0" / "samples.png").stat().st_size > 1000
    assert main(["sample", str(cvae_run)]) == 0
    assert (cvae_run / "sample" / "seed=0" / "style_content.png").stat().st_size > 1000
    assert main(["inspect", str(cvae_run), "--limit", "200"]) == 0
    assert main(["bounds", str(cvae_run), "--k", "1", "10", "--limit", "50", "--no-progress"]) == 0
    for label in ("10", "-1", "three"):
        capsys.readouterr()
        assert main(["sample", str(cvae_run), "--label", label]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"--label {label}" in err and "0-9" in err


def test_gaussian_model_with_conditional_is_the_class_conditional_vae(tmp_path):
    """``--model gaussian --conditional`` builds GaussianVAE with the data's 10 classes (the model
    ``cvae`` is), trains it, and the run folder rebuilds it."""
    run = tmp_path / "run"
    args = ["--model", "gaussian", "--conditional", "--data", "digits:200", "--epochs", "1", "--latent-dim", "2"]
    assert main(["train", *args, "--hidden", "16", "--out", str(run), "--no-progress"]) == 0
    config, model, guide = runs.load_run(run)
    assert config["model"]["name"] == "gaussian" and config["model"]["kwargs"]["num_classes"] == 10
    assert type(model) is GaussianVAE and model.num_classes == 10 and guide.num_classes == 10
    z = torch.zeros(2, 2)
    x = torch.rand(2, 784).round()
    assert not torch.allclose(model.likelihood(z, torch.tensor([3, 3])).log_prob(x),
                              model.likelihood(z, torch.tensor([7, 7])).log_prob(x))  # fmt: skip
    assert class_samples(model, torch.tensor([3, 7])).shape == (2, 784)


def test_label_on_an_unconditional_run_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--data", "digits:200", "--epochs", "1", "--latent-dim", "2", "--hidden", "16", "--out", str(run)])
    capsys.readouterr()
    assert main(["sample", str(run), "--label", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not class-conditional" in err


def test_conditional_model_on_data_without_labels_is_one_line(tmp_path, capsys):
    file = tmp_path / "bin.npz"
    rng = np.random.default_rng(0)
    np.savez(file, **{s: (rng.random((20, 784)) < 0.3).astype(np.uint8) for s in ("train", "valid", "test")})
    code = main(["train", "--model", "cvae", "--data", f"binarized-mnist:{file}", "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no class labels" in err and "digits" in err


def test_conditional_guide_and_learned_prior_read_the_label():
    torch.manual_seed(0)
    guide = MLPGuide(784, 3, hidden=(16,), num_classes=10)
    x = torch.rand(1, 784).expand(2, 784)
    q = guide.posterior(x, torch.tensor([1, 2]))
    assert not torch.allclose(q.mean[0], q.mean[1])
    model = CVAE(784, 10, latent_dim=3, hidden=(16,), learned_prior=True)
    p = model.prior(2, torch.tensor([1, 2]))
    assert torch.allclose(p.mean, torch.zeros(2, 3)) and torch.allclose(p.stddev, torch.ones(2, 3))  # starts at N(0, I)
    with torch.no_grad():
        model.prior_net.weight[1].fill_(0.5)
    assert not torch.allclose(model.prior(2, torch.tensor([1, 2])).mean[0], torch.zeros(3))


def test_quadrant_masks():
    side = 28
    for quadrants, visible in ((1, [(1, 0)]), (2, [(0, 0), (1, 0)]), (3, [(0, 0), (0, 1), (1, 0)])):
        grid = ~hidden_mask(quadrants, side).reshape(side, side)
        for r in (0, 1):
            for c in (0, 1):
                block = grid[r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14]
                assert bool(block.all()) == ((r, c) in visible) and bool(block.any()) == ((r, c) in visible)
    with pytest.raises(UserError, match="--visible-quadrants 4"):
        hidden_mask(4)


def test_masked_bernoulli_scores_only_the_hidden_pixels():
    torch.manual_seed(0)
    logits, x = torch.randn(3, 784), (torch.rand(3, 784) < 0.5).float()
    mask = hidden_mask(2)
    lg, xn, m = logits.double().numpy(), x.double().numpy(), mask.numpy()
    expected = np.where(m, xn * np.log(1 / (1 + np.exp(-lg))) + (1 - xn) * np.log(1 / (1 + np.exp(lg))), 0.0).sum(-1)
    assert np.allclose(BernoulliImage(logits, mask=mask).log_prob(x).numpy(), expected, atol=1e-3)


def test_completion_keeps_the_visible_pixels_exactly(tmp_path):
    run = tmp_path / "run"
    args = ["--model", "completion", "--data", "digits:300", "--epochs", "1", "--baseline-epochs", "1"]
    args += ["--visible-quadrants", "3", "--latent-dim", "4", "--hidden", "32", "--out", str(run), "--no-progress"]
    assert main(["train", *args]) == 0
    config, model, _ = runs.load_run(run)
    x = runs.load_split(config, "test").head(10).tensor()
    y = model.condition(x, None)
    assert bool((y[:, model.hidden] == -1).all()) and torch.equal(y[:, ~model.hidden], x[:, ~model.hidden])
    completions = model.complete(y, num_samples=3)
    assert completions.shape == (3, 10, 784)
    assert torch.equal(completions[:, :, ~model.hidden], x[:, ~model.hidden].expand(3, -1, -1))
    assert not torch.equal(completions[0, :, model.hidden], completions[1, :, model.hidden])  # z varies
    assert main(["complete", str(run), "-n", "4"]) == 0
    assert (run / "complete" / "n=4,samples=4,seed=0" / "completions.png").stat().st_size > 1000


def test_completion_cvae_model_scores_hidden_pixels_given_the_visible():
    model = CompletionCVAE(784, visible_quadrants=1, latent_dim=3, hidden=(16,))
    x = (torch.rand(4, 784) < 0.3).float()
    y = model.condition(x, None)
    z = torch.randn(4, 3)
    changed = x.clone()
    changed[:, ~model.hidden] = 1 - changed[:, ~model.hidden]  # flip every visible pixel
    lik = model.likelihood(z, y)
    assert torch.allclose(lik.log_prob(x), lik.log_prob(changed))  # visible pixels are not scored
    assert not torch.allclose(model.prior(4, y).mean, model.prior(4, model.condition(changed, None)).mean)


def test_the_completion_baseline_stays_as_pretrained_while_the_cvae_trains(tmp_path):
    """Frozen after pretraining: its last pretraining gradients must not reach the trainer's Adam."""
    cfg = TrainConfig.for_model(
        model="completion", data="digits:64", latent_dim=2, hidden=[8], baseline_epochs=1, batch_size=16, steps=3
    )
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda line: None)
    pretrain, pretrained = trainer.model.pretrain, {}

    def keeping(*args, **kwargs):
        pretrain(*args, **kwargs)
        pretrained.update({k: v.clone() for k, v in trainer.model.baseline.state_dict().items()})

    trainer.model.pretrain = keeping
    trainer.train()
    for name, value in trainer.model.baseline.state_dict().items():
        assert torch.equal(value, pretrained[name]), name
