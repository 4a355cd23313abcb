"""Guides: each head's q(z | x) against independent computations (dense Gaussians, moments, the
flow's Jacobian by autograd), and every guide training on images and strokes through the trainer
and the CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from torch.autograd.functional import jacobian

from guides import GUIDES, DiagGuide, FullGuide, IAFGuide, MLPGuide, RNNGuide
from guides.flows import IAFStep
from guides.heads import FullCovarianceNormal, LowRankNormal
from pvae import runs
from pvae.cli import main
from pvae.kinds.strokes.data import prepare
from pvae.objectives import detach_parameters
from pvae.posterior import marginal_moments
from pvae.train import TrainConfig, Trainer

NEW_GUIDES = ["diag", "lowrank", "full", "iaf"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sketches(stroke_shapes):
    data = prepare({"train": stroke_shapes(12), "test": stroke_shapes(4, 1)}, "shapes")
    return data.split("train").tensor()


@pytest.fixture(scope="module")
def ndjson(tmp_path_factory, stroke_shapes):
    path = tmp_path_factory.mktemp("strokes") / "shapes.ndjson"
    lines = []
    for sketch in stroke_shapes(24):
        points = np.cumsum(sketch[:, :2], 0).astype(int)
        lines.append(json.dumps({"word": "shape", "drawing": [[points[:, 0].tolist(), points[:, 1].tolist()]]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _guide(name: str, kind: str, latent_dim: int = 3, **kw):
    cls = GUIDES[name]
    if kind == "image":
        return cls(latent_dim=latent_dim, data_dim=6, hidden=[5], **kw)
    return cls(latent_dim=latent_dim, max_len=20, enc_hidden=8, **kw)


def test_registry_keeps_the_old_guides_and_adds_the_new():
    assert {"mlp": MLPGuide, "rnn": RNNGuide}.items() <= GUIDES.items()
    assert set(NEW_GUIDES) <= set(GUIDES)
    assert (GUIDES["iaf"].analytic_kl, GUIDES["full"].analytic_kl, GUIDES["diag"].factorised) == (False, True, True)
    assert issubclass(MLPGuide, DiagGuide) and issubclass(RNNGuide, DiagGuide)  # configurations, not copies
    with pytest.raises(ValueError, match="one of data_dim .* max_len .* or vocab"):
        FullGuide(latent_dim=2)


@pytest.mark.parametrize("name", NEW_GUIDES)
@pytest.mark.parametrize("kind", ["image", "strokes"])
def test_posterior_shapes_and_log_prob_of_its_samples(name, kind, sketches):
    torch.manual_seed(0)
    guide = _guide(name, kind)
    x = torch.rand(4, 6) if kind == "image" else sketches[:4]
    q = guide.posterior(x)
    assert (q.batch_shape, q.event_shape) == ((4,), (3,))
    z = q.rsample((7,))
    assert z.shape == (7, 4, 3) and q.log_prob(z).shape == (7, 4)
    assert q.mean.shape == (4, 3)
    # The density at a copy of the samples (no cached inverse) is the same.
    torch.testing.assert_close(q.log_prob(z.detach().clone()), q.log_prob(z), atol=1e-4, rtol=1e-5)
    # Broadcast to K particles as the vectorised objectives do.
    assert q.expand((5, 4)).rsample().shape == (5, 4, 3)


@pytest.mark.parametrize("name", ["diag", "lowrank", "full"])
def test_gaussian_heads_against_dense_gaussians_and_their_moments(name):
    torch.manual_seed(1)
    guide = _guide(name, "image", rank=2) if name == "lowrank" else _guide(name, "image")
    with torch.no_grad():
        for p in guide.head.parameters():
            p.normal_(0, 0.5)
    x = torch.rand(2, 6)
    q = guide.posterior(x)
    if name == "diag":
        cov = torch.diag_embed(q.base_dist.scale**2)
    elif name == "lowrank":
        assert isinstance(q, LowRankNormal) and q.cov_factor.shape == (2, 3, 2)
        cov = q.cov_factor @ q.cov_factor.mT + torch.diag_embed(q.cov_diag)
    else:
        assert isinstance(q, FullCovarianceNormal)
        tril = q.scale_tril
        assert torch.equal(tril, tril.tril()) and (tril.diagonal(dim1=-2, dim2=-1) > 0).all()
        cov = tril @ tril.mT
    loc, cov = q.mean.detach(), cov.detach()
    dense = torch.distributions.MultivariateNormal(loc.double(), covariance_matrix=cov.double())
    z = q.sample((5,))
    torch.testing.assert_close(q.log_prob(z).double(), dense.log_prob(z.double()), atol=1e-4, rtol=1e-4)
    draws = q.sample((40000,)).double()
    torch.testing.assert_close(draws.mean(0), loc.double(), atol=0.05, rtol=0)
    centred = draws - draws.mean(0)
    empirical = torch.einsum("nbi,nbj->bij", centred, centred) / len(draws)
    torch.testing.assert_close(empirical, cov.double(), atol=0.08 * float(cov.abs().max()), rtol=0)
    # pvae inspect's per-dimension moments: exact, the diagonal of the dense covariance
    mean, variance, exact = marginal_moments(q)
    assert exact
    torch.testing.assert_close((mean, variance), (loc, cov.diagonal(dim1=-2, dim2=-1)), atol=1e-5, rtol=1e-5)
    # closed-form KL against N(0, I) (registered for meanfield) = torch's dense Gaussian KL
    prior = dist.Normal(torch.zeros(2, 3), torch.ones(2, 3)).to_event(1)
    dense_prior = torch.distributions.MultivariateNormal(torch.zeros(2, 3).double(), torch.eye(3).double())
    torch.testing.assert_close(
        torch.distributions.kl_divergence(q, prior).double(),
        torch.distributions.kl_divergence(dense, dense_prior),
        atol=1e-4,
        rtol=1e-4,
    )


def _tiny_flow():
    torch.manual_seed(2)
    guide = IAFGuide(latent_dim=3, data_dim=4, hidden=[], flows=2, flow_hidden=8)
    with torch.no_grad():
        for p in guide.head.parameters():
            p.add_(0.3 * torch.randn_like(p))
    q = guide.posterior(torch.randn(1, 4))
    return guide, q


def _flow(q, u: torch.Tensor) -> torch.Tensor:
    """The flow's transforms applied to base points ``u``, without their caches."""
    for t in q.transforms:
        u = t._call(u)
    return u


def test_flow_log_det_is_the_autograd_jacobian():
    _, q = _tiny_flow()
    u = q.base_dist.sample()[0]  # (3,)
    J = jacobian(lambda v: _flow(q, v[None])[0], u)
    # each step is autoregressive: lower triangular in its order (identity, then reversed)
    step = jacobian(lambda v: q.transforms[0]._call(v[None])[0], u)
    assert torch.equal(step, step.tril()) and (step.diagonal() > 0).all()
    step2 = jacobian(lambda v: q.transforms[1]._call(v[None])[0], u)
    assert torch.equal(step2, step2.triu())
    expected = q.base_dist.log_prob(u[None]) - torch.linalg.slogdet(J)[1]
    z = _flow(q, u[None])
    torch.testing.assert_close(q.log_prob(z), expected, atol=1e-5, rtol=1e-5)
    # sampled through the distribution (cached inverse) and at a fresh copy (computed inverse)
    z = q.rsample((6,))
    u_back = z.detach().clone()
    for t in reversed(q.transforms):
        u_back = t._inverse(u_back)
    torch.testing.assert_close(_flow(q, u_back), z.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(q.log_prob(z.detach().clone()), q.log_prob(z), atol=1e-5, rtol=1e-5)


def test_detached_flow_gives_the_path_derivative_of_log_q():
    """grad_z log q(z) through the inverse with detached parameters equals J^-T (grad_u log q0(u)
    - grad_u log|det J(u)|) computed by autograd from the forward flow, and reaches no parameter."""
    guide, q = _tiny_flow()
    u = q.base_dist.sample()[0].requires_grad_()
    J = jacobian(lambda v: _flow(q, v[None])[0], u, create_graph=True)
    log_q_at_u = q.base_dist.log_prob(u[None])[0] - torch.linalg.slogdet(J)[1]
    (grad_u,) = torch.autograd.grad(log_q_at_u, u)
    expected = torch.linalg.solve(J.detach().T, grad_u)

    z = _flow(q, u.detach()[None]).detach().requires_grad_()
    frozen = detach_parameters(q).log_prob(z)
    torch.testing.assert_close(frozen, q.log_prob(z.detach().clone()), atol=1e-5, rtol=1e-5)
    params = list(guide.parameters())
    grads = torch.autograd.grad(frozen.sum(), [z, *params], allow_unused=True)
    torch.testing.assert_close(grads[0][0], expected, atol=1e-4, rtol=1e-4)
    assert all(g is None for g in grads[1:])


def test_made_jacobian_is_the_autograd_jacobian():
    guide, _ = _tiny_flow()
    context = torch.randn(4, guide.trunk.out_dim)
    x = torch.randn(4, 3)
    for made in guide.head.flows:
        shift, logit, dshift, dlogit = made.jacobian(x, context)
        torch.testing.assert_close((shift, logit), made(x, context))
        for b in range(4):
            expected = jacobian(lambda v: torch.cat(made(v[None], context[b : b + 1])).reshape(2, 3), x[b])
            torch.testing.assert_close(dshift[b], expected[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(dlogit[b], expected[1], atol=1e-5, rtol=1e-5)


def test_detached_flow_at_its_own_sample_needs_no_inverse(monkeypatch):
    """At the sample just drawn (or a copy of it, as DReG passes), the linearised inverse gives the
    same log q and d/dz as inverting the flow, without inverting it; elsewhere it inverts."""
    guide, q = _tiny_flow()
    z = q.rsample((5,))
    point = z.detach().clone().requires_grad_()
    reference = detach_parameters(q)
    reference._anchor = None  # force the inverse
    expected = torch.autograd.grad(reference.log_prob(point).sum(), point)[0]
    frozen = detach_parameters(q)
    with monkeypatch.context() as m:
        m.setattr(IAFStep, "_inverse", lambda self, y: pytest.fail("inverted at the sample"))
        value = frozen.log_prob(point)
        (grad,) = torch.autograd.grad(value.sum(), point)
    torch.testing.assert_close(value, q.log_prob(z).detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, expected, atol=1e-4, rtol=1e-4)
    other = point.detach() + 0.1
    torch.testing.assert_close(frozen.log_prob(other), q.log_prob(other), atol=1e-5, rtol=1e-5)


def test_flow_mean_is_deterministic_close_to_the_sample_mean_and_shared_across_datapoints():
    guide, q = _tiny_flow()
    torch.testing.assert_close(q.mean, q.mean)
    draws = q.sample((40000,))
    torch.testing.assert_close(q.mean, draws.mean(0), atol=0.1 * float(draws.std(0).max()), rtol=0)
    # where q does not depend on x, neither does the estimate of its mean (no spurious active units)
    with torch.no_grad():
        guide.head.base.weight.zero_()
        for made in guide.head.flows:
            made.context.weight.zero_()
    means = guide.posterior(torch.randn(5, 4)).mean
    assert torch.equal(means, means[:1].expand_as(means))


def test_diag_guide_is_the_mlp_guide_on_images():
    torch.manual_seed(3)
    mlp = MLPGuide(data_dim=6, latent_dim=3, hidden=[5], num_classes=2)
    torch.manual_seed(3)
    diag = DiagGuide(latent_dim=3, data_dim=6, hidden=[5], num_classes=2)
    assert list(mlp.state_dict()) == list(diag.state_dict())
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 1, 0])
    a, b = mlp.posterior(x, y), diag.posterior(x, y)
    torch.testing.assert_close((a.base_dist.loc, a.base_dist.scale), (b.base_dist.loc, b.base_dist.scale))
    diag.load_state_dict(MLPGuide(data_dim=6, latent_dim=3, hidden=[5], num_classes=2).state_dict())


@pytest.mark.parametrize("name", ["lowrank", "iaf"])
def test_new_guides_read_class_labels(name, sketches):
    torch.manual_seed(4)
    for kind, x in (("image", torch.rand(4, 6)), ("strokes", sketches[:4])):
        guide = _guide(name, kind, num_classes=3)
        y = torch.tensor([0, 1, 2, 0])
        assert not torch.allclose(guide.posterior(x, y).mean, guide.posterior(x, (y + 1) % 3).mean)
    # an unconditional guide ignores y (the completion model passes an image)
    guide = _guide(name, "image")
    torch.testing.assert_close(guide.posterior(x := torch.rand(2, 6), torch.rand(2, 6)).mean, guide.posterior(x).mean)


def _metrics(run):
    with open(run / runs.METRICS) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", NEW_GUIDES)
@pytest.mark.parametrize("kind", ["image", "strokes"])
def test_every_guide_trains_through_the_trainer(name, kind, ndjson, tmp_path):
    common = dict(guide=name, objective="iwae-dreg", particles=2, epochs=1, steps=3, latent_dim=4, seed=1)
    if kind == "image":
        config = TrainConfig(model="gaussian", data="digits:96", batch_size=32, hidden=[16], **common)
    else:
        config = TrainConfig.for_model(
            model="sketch", data=f"quickdraw:{ndjson}", batch_size=8, enc_hidden=8, dec_hidden=16, mixtures=2, **common
        )
    trainer = Trainer(config, tmp_path / "run", progress=False, log=lambda line: None)
    assert type(trainer.guide) is GUIDES[name] and trainer.guide.kind == ("mlp" if kind == "image" else "rnn")
    trainer.train()
    row = _metrics(tmp_path / "run")[-1]
    assert int(row["step"]) == 3
    assert math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["test_elbo"]))
    _, _, guide = runs.load_run(tmp_path / "run")  # config.json and the checkpoint rebuild it
    assert type(guide) is GUIDES[name]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--guide", "full", "--kl-floor", "0.1", "--kl-floor-mode", "per-dim"], "--guide full"),  # not factorised
    ],
)
def test_the_trainer_refuses_what_the_guide_cannot_do_in_one_line(flags, message, tmp_path, capsys):
    assert not GUIDES["full"].factorised  # what it reads
    args = ["train", *flags, "--data", "digits:50", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["image", "strokes"])
def test_cli_trains_an_iaf_guide_with_dreg(kind, ndjson, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--guide", "iaf", "--objective", "iwae-dreg", "--particles", "5", "--epochs", "1", "--steps", "2"]
    args += ["--latent-dim", "3", "--out", str(run), "--no-progress"]
    if kind == "image":
        args += ["--data", "digits:64", "--batch-size", "32", "--hidden", "16"]
    else:
        args += ["--model", "sketch", "--data", f"quickdraw:{ndjson}", "--batch-size", "8"]
        args += ["--enc-hidden", "8", "--dec-hidden", "16", "--mixtures", "2"]
    assert main(args) == 0
    config = json.loads((run / runs.CONFIG).read_text())
    assert config["guide"]["name"] == "iaf" and config["train"]["objective"] == "iwae-dreg"
    assert math.isfinite(float(_metrics(run)[-1]["train_loss"]))
