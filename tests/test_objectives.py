"""The objectives against independent computations: numpy for IWAE, closed forms for the ELBO."""

from __future__ import annotations

import re

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from guides.amortised import IAFGuide
from guides.mlp import MLPGuide
from models.gaussian_vae import GaussianVAE
from pvae.objectives import IWAE, OBJECTIVES, KLControl, KLControlled, TraceELBO, make_objective


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _mlp_numpy(layers, h: np.ndarray) -> np.ndarray:
    """Forward pass of a pvae.layers.mlp (Linear and ReLU layers) in numpy."""
    for layer in layers:
        if isinstance(layer, torch.nn.Linear):
            h = h @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        else:
            assert isinstance(layer, torch.nn.ReLU)
            h = np.maximum(h, 0.0)
    return h


def _numpy_log_weights(model: GaussianVAE, guide: MLPGuide, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log p(x_b, z_kb) - log q(z_kb | x_b) for a Bernoulli GaussianVAE and an MLPGuide, (K, B)."""
    h = _mlp_numpy(guide.trunk, x)
    out = h @ guide.head.weight.detach().double().numpy().T + guide.head.bias.detach().double().numpy()
    loc, raw = np.split(out, 2, axis=-1)
    sigma = np.log1p(np.exp(raw)) + 1e-5
    log_q = (-0.5 * ((z - loc) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    logits = _mlp_numpy(model.decoder.net, z)
    log_lik = (x * logits - np.logaddexp(0.0, logits)).sum(-1)  # log Bernoulli(x | sigmoid(logits))
    return log_lik + log_prior - log_q


@pytest.fixture
def tiny():
    torch.manual_seed(1)
    model = GaussianVAE(data_dim=6, latent_dim=3, hidden=[5])
    guide = MLPGuide(data_dim=6, latent_dim=3, hidden=[4])
    x = torch.bernoulli(torch.full((4, 6), 0.4))
    return model, guide, x


def test_iwae_equals_numpy_bound_with_the_same_samples(tiny):
    model, guide, x = tiny
    K = 7
    objective = IWAE(num_particles=K)
    pyro.set_rng_seed(3)
    loss = objective.loss(model.model, guide.guide, x)
    pyro.set_rng_seed(3)  # the same draws again, to read the samples the loss used
    _, guide_trace = objective._get_trace(model.model, guide.guide, (x,), {})
    z = guide_trace.nodes["z"]["value"].detach()
    assert z.shape == (K, x.shape[0], 3)

    log_w = _numpy_log_weights(model, guide, x.double().numpy(), z.double().numpy())
    bound = _logsumexp(log_w, axis=0) - np.log(K)  # L_K per datapoint (Burda et al. eq. 8)
    assert loss == pytest.approx(-bound.sum(), rel=1e-5)
    # A joint bound over the batch (one logsumexp of the summed weights) is another number.
    joint = _logsumexp(log_w.sum(1), axis=0) - np.log(K)
    assert abs(joint - bound.sum()) > 1e-2
    pyro.set_rng_seed(3)
    per_datapoint = objective.bound(model.model, guide.guide, x)
    np.testing.assert_allclose(per_datapoint.detach().numpy(), bound, rtol=1e-5)


def test_iwae_with_one_particle_is_the_elbo_estimate(tiny):
    model, guide, x = tiny
    pyro.set_rng_seed(3)
    iwae = IWAE(num_particles=1).loss(model.model, guide.guide, x)
    pyro.set_rng_seed(3)
    elbo = pyro.infer.Trace_ELBO(num_particles=1).loss(model.model, guide.guide, x)
    assert iwae == pytest.approx(elbo, rel=1e-6)


def test_iwae_gradients_are_finite_and_raise_the_bound(tiny):
    model, guide, x = tiny
    x = torch.bernoulli(torch.rand(64, 6).pow(2))
    objective = IWAE(num_particles=5)
    params = list(model.parameters()) + list(guide.parameters())
    optim = torch.optim.Adam(params, lr=0.02)

    def bound() -> float:
        pyro.set_rng_seed(7)
        with torch.no_grad():
            return float(IWAE(num_particles=200).bound(model.model, guide.guide, x).mean())

    before = bound()
    for _ in range(150):
        loss = objective.differentiable_loss(model.model, guide.guide, x)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in params)
        optim.step()
        optim.zero_grad()
    assert bound() > before + 0.5


def test_iwae_rejects_sites_outside_the_data_plate():
    def model(x, y=None):
        pyro.sample("scale", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1), obs=x)

    def guide(x, y=None):
        pyro.sample("scale", dist.LogNormal(0.0, 1.0))

    with pytest.raises(ValueError, match="'scale' is outside the data plate"):
        IWAE(num_particles=3).loss(model, guide, torch.zeros(4, 2))


def test_iwae_keeps_subsampling_scale_outside_the_logsumexp(tiny):
    model, guide, x = tiny
    K, N = 4, 40
    objective = IWAE(num_particles=K)

    def subsampled(fn):
        def wrapped(x, y=None):
            pyro.module("model", model)
            pyro.module("guide", guide)
            with pyro.plate("data", N, subsample=torch.arange(x.shape[0])):
                fn(x)

        return wrapped

    @subsampled
    def sub_model(x):
        z = pyro.sample("z", model.prior(x.shape[0]))
        pyro.sample("x", model.likelihood(z), obs=x)

    @subsampled
    def sub_guide(x):
        pyro.sample("z", guide.posterior(x))

    pyro.set_rng_seed(4)
    whole = objective.loss(model.model, guide.guide, x)
    pyro.set_rng_seed(4)
    assert objective.loss(sub_model, sub_guide, x) == pytest.approx(whole * N / x.shape[0], rel=1e-6)

    # Any other scale (a KL weight, say) multiplies its site's term inside log w instead.
    def weighted_guide(x, y=None):
        with poutine.scale(scale=0.5):
            guide.guide(x)

    def weighted_model(x, y=None):
        pyro.module("model", model)
        with pyro.plate("data", x.shape[0]):
            with poutine.scale(scale=0.5):
                z = pyro.sample("z", model.prior(x.shape[0]))
            pyro.sample("x", model.likelihood(z), obs=x)

    pyro.set_rng_seed(4)
    _, guide_trace = objective._get_trace(weighted_model, weighted_guide, (x,), {})
    z = guide_trace.nodes["z"]["value"].detach().double().numpy()
    xn = x.double().numpy()
    log_w = _numpy_log_weights(model, guide, xn, z)
    log_lik = (xn * _mlp_numpy(model.decoder.net, z) - np.logaddexp(0.0, _mlp_numpy(model.decoder.net, z))).sum(-1)
    weighted = log_lik + 0.5 * (log_w - log_lik)
    pyro.set_rng_seed(4)
    loss = objective.loss(weighted_model, weighted_guide, x)
    assert loss == pytest.approx(-(_logsumexp(weighted, 0) - np.log(K)).sum(), rel=1e-5)


def _linear_gaussian(obs_scale: float = 0.5):
    torch.manual_seed(2)
    model = GaussianVAE(data_dim=5, latent_dim=2, hidden=[], likelihood="gaussian", obs_scale=obs_scale)
    guide = MLPGuide(data_dim=5, latent_dim=2, hidden=[])
    x = torch.randn(3, 5)
    return model, guide, x


def _closed_form_elbo(model: GaussianVAE, guide: MLPGuide, x: torch.Tensor, s: float) -> float:
    """Sum over the batch of E_q[log p(x|z)] - KL(q || p) for the linear-Gaussian pair, in numpy."""
    recon, kl = _closed_form_terms(model, guide, x, s)
    return float(recon.sum() - kl.sum())


@pytest.mark.parametrize("name", ["elbo", "meanfield"])
def test_elbo_estimators_match_the_closed_form_in_expectation(name):
    model, guide, x = _linear_gaussian()
    exact = _closed_form_elbo(model, guide, x, 0.5)
    estimate = -make_objective(name, num_particles=20000).loss(model.model, guide.guide, x)
    # The per-particle std of this ELBO is ~3 nats, so 20000 particles give a standard error ~0.02.
    assert estimate == pytest.approx(exact, abs=0.15)


def test_elbo_estimators_agree_on_the_image_model(tiny):
    """Monte Carlo KL (elbo) and analytic KL (meanfield) estimate the same number."""
    model, guide, x = tiny
    a = -make_objective("elbo", num_particles=20000).loss(model.model, guide.guide, x)
    b = -make_objective("meanfield", num_particles=20000).loss(model.model, guide.guide, x)
    assert a == pytest.approx(b, abs=0.15)


def _value_and_grads(objective, model, guide, x, params, seed: int = 5):
    pyro.set_rng_seed(seed)
    loss = objective.differentiable_loss(model, guide, x)
    return loss.item(), torch.autograd.grad(loss, params)


def _assert_same(a, b) -> None:
    assert a[0] == pytest.approx(b[0], rel=1e-6)
    for g0, g1 in zip(a[1], b[1]):
        torch.testing.assert_close(g0, g1)


@pytest.mark.parametrize("particles, vectorize", [(3, True), (1, True), (2, False)])
def test_trace_elbo_shortcut_matches_pyro_value_and_gradients(tiny, particles, vectorize):
    model, guide, x = tiny
    params = list(model.parameters()) + list(guide.parameters())
    settings = dict(num_particles=particles, vectorize_particles=vectorize, max_plate_nesting=1)
    ours = TraceELBO(**settings)
    _assert_same(
        _value_and_grads(ours, model.model, guide.guide, x, params),
        _value_and_grads(pyro.infer.Trace_ELBO(**settings), model.model, guide.guide, x, params),
    )
    assert not ours.score_function  # the shortcut, not Trace_ELBO's surrogate


def _score_function_pair(batch: int):
    """A model and a guide with a reparameterised site z and a Bernoulli site c (a score-function
    term), the guide's parameters ``(a, loc)`` plain tensors."""
    a, loc = torch.full((batch,), 0.3, requires_grad=True), torch.full((batch,), -0.5, requires_grad=True)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.3))
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z + 2 * c, 0.5), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(logits=a + x))
            pyro.sample("z", dist.Normal(loc + x, 0.8))

    return model, guide, [a, loc]


@pytest.mark.parametrize("particles, vectorize", [(4, True), (1, True), (3, False)])
def test_trace_elbo_is_pyro_trace_elbo_for_a_guide_with_a_score_function_site(particles, vectorize):
    x = torch.tensor([0.5, 2.0, -1.0])
    model, guide, params = _score_function_pair(len(x))
    settings = dict(num_particles=particles, vectorize_particles=vectorize, max_plate_nesting=1)
    ours = TraceELBO(**settings)
    ours.differentiable_loss(model, guide, x)  # the first call sees the Bernoulli site and turns to Trace_ELBO
    assert ours.score_function
    pyros = _value_and_grads(pyro.infer.Trace_ELBO(**settings), model, guide, x, params)
    _assert_same(_value_and_grads(ours, model, guide, x, params), pyros)
    # The plain ELBO sum of the shortcut has the same value and another gradient here.
    pyro.set_rng_seed(5)
    plain = sum(g.log_prob_sum() - m.log_prob_sum() for m, g in ours.importance_traces(model, guide, x))
    plain_grads = torch.autograd.grad(plain / particles, params)
    assert (plain / particles).item() == pytest.approx(pyros[0], rel=1e-6)
    assert max((a - b).abs().max() for a, b in zip(plain_grads, pyros[1])) > 1e-2


def test_meanfield_estimates_the_kl_by_monte_carlo_where_there_is_no_closed_form():
    """An IAF guide has no closed-form KL: ``meanfield`` takes log q - log p at its draw, as Pyro's
    ``TraceMeanField_ELBO`` does, which is then ``elbo``'s estimate from the same draws."""
    model, guide = GaussianVAE(6, latent_dim=3), IAFGuide(latent_dim=3, data_dim=6)
    x = torch.bernoulli(torch.full((4, 6), 0.4))
    params = list(model.parameters()) + list(guide.parameters())
    ours = _value_and_grads(make_objective("meanfield", 3), model.model, guide.guide, x, params)
    pyros = pyro.infer.TraceMeanField_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=1)
    _assert_same(ours, _value_and_grads(pyros, model.model, guide.guide, x, params))
    _assert_same(ours, _value_and_grads(make_objective("elbo", 3), model.model, guide.guide, x, params))


def test_meanfield_draws_what_pyro_draws(tiny):
    """The same draws, value and gradients as Pyro's class."""
    model, guide, x = tiny
    params = list(model.parameters()) + list(guide.parameters())
    pyros = pyro.infer.TraceMeanField_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=1)
    ours = make_objective("meanfield", 3)
    _assert_same(
        _value_and_grads(ours, model.model, guide.guide, x, params),
        _value_and_grads(pyros, model.model, guide.guide, x, params),
    )


def test_one_registry_names_every_objective_and_its_capabilities():
    assert list(OBJECTIVES) == ["elbo", "meanfield", "iwae", "elbo-stl", "iwae-stl", "iwae-dreg", "aae", "ali", "lfvi"]
    for name, cls in OBJECTIVES.items():
        assert cls.name == name and issubclass(cls, pyro.infer.ELBO)
        assert cls.closed_form_kl is (name == "meanfield")  # a class attribute, read before building
        objective = make_objective(name, 3)
        assert type(objective) is cls and objective.num_particles == 3
        controlled = make_objective(name, 2, kl=KLControl(weight=0.5))
        assert type(controlled) is KLControlled and type(controlled.base) is cls
        assert controlled.closed_form_kl is cls.closed_form_kl
        assert controlled.requires_density is cls.requires_density
        assert controlled.networks() == controlled.base.networks()
        assert bool(objective.networks()) is (name in ("aae", "ali", "lfvi"))
        assert cls.requires_density is (name in ("iwae", "elbo-stl", "iwae-stl", "iwae-dreg"))
        assert cls.uses_kl is (name not in ("aae", "ali", "lfvi"))


@pytest.mark.parametrize("name", ["elbo", "meanfield", "iwae"])
def test_plain_pyro_svi_trains_with_every_objective(tiny, name):
    model, guide, x = tiny
    x = torch.bernoulli(torch.rand(32, 6).pow(2))
    svi = pyro.infer.SVI(model.model, guide.guide, pyro.optim.Adam({"lr": 0.03}), loss=make_objective(name, 3))
    losses = [svi.step(x) for _ in range(100)]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_make_objective_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown objective"):
        make_objective("renyi")
    with pytest.raises(ValueError, match="positive integer"):
        make_objective("iwae", 0)


@pytest.mark.parametrize(
    "name, message",
    [
        ("elbo", "make_objective('elbo'): unknown option 'nosuch_option'; elbo takes ignore_jit_warnings, "),
        ("iwae", "make_objective('iwae'): unknown option 'nosuch_option'; iwae takes no options"),
        (
            "aae",
            "unknown option 'nosuch_option'; aae takes adversarial_weight, disc_dropout, disc_hidden, disc_lr_ratio,",
        ),
    ],
)
def test_make_objective_refuses_an_unknown_option_in_one_line(name, message):
    with pytest.raises(TypeError, match=re.escape(message)) as error:
        make_objective(name, 1, nosuch_option=3)
    assert "\n" not in str(error.value)


def test_make_objective_takes_what_the_trainer_gives_every_objective():
    """The model's and data's description and other objectives' options reach only those that take them."""
    given = dict(latent_dim=4, num_classes=0, data_dim=24, steps=32, vocab=9, adversarial_weight=30.0)
    assert type(make_objective("elbo", 1, **given)) is TraceELBO
    assert make_objective("aae", 1, **given).latent_dim == 4
    assert make_objective("elbo", 1, retain_graph=True).retain_graph  # Pyro's ELBO options reach it


def _closed_form_terms(model: GaussianVAE, guide: MLPGuide, x: torch.Tensor, s: float):
    """Per-datapoint E_q[log p(x|z)] (B,) and per-dimension KL(q || p) (B, Z), in numpy."""
    W = model.decoder.net[0].weight.detach().double().numpy()
    b = model.decoder.net[0].bias.detach().double().numpy()
    out = x.double().numpy() @ guide.head.weight.detach().double().numpy().T + guide.head.bias.detach().double().numpy()
    mu, raw = np.split(out, 2, axis=-1)
    var = (np.log1p(np.exp(raw)) + 1e-5) ** 2
    xn = x.double().numpy()
    # E_q ||x - W z - b||^2 = ||x - W mu - b||^2 + sum_dj W_dj^2 var_j
    sq = ((xn - mu @ W.T - b) ** 2).sum(-1) + (var @ (W**2).T).sum(-1)
    recon = -0.5 * xn.shape[1] * np.log(2 * np.pi * s**2) - sq / (2 * s**2)
    return recon, 0.5 * (var + mu**2 - 1 - np.log(var))


@pytest.mark.parametrize("name", ["elbo", "meanfield"])
def test_kl_weight_and_floors_match_closed_forms(name):
    model, guide, x = _linear_gaussian()
    recon, kl = _closed_form_terms(model, guide, x, 0.5)  # (B,), (B, Z)
    B, Z = kl.shape
    particles = 20000

    def loss(control):
        return make_objective(name, particles, kl=control).loss(model.model, guide.guide, x)

    # weight: -sum_b [E log p(x_b|z) - w KL_b]
    assert loss(KLControl(weight=0.3)) == pytest.approx(-(recon - 0.3 * kl.sum(1)).sum(), abs=0.15)
    # floor above the mean KL per dimension: the KL term is w B Z floor (sketch-rnn's max(L_KL, floor))
    high = float(kl.sum(1).mean() / Z) + 1.0
    assert loss(KLControl(weight=0.5, floor=high)) == pytest.approx(-recon.sum() + 0.5 * B * Z * high, abs=0.15)
    # free bits between the dimensions' KLs: w B sum_j max(mean_b KL_bj, floor)
    per_dim = kl.mean(0)
    floor = float(per_dim.mean())
    expected = -recon.sum() + 0.5 * B * np.maximum(per_dim, floor).sum()
    assert loss(KLControl(weight=0.5, floor=floor, per_dim=True)) == pytest.approx(expected, abs=0.15)
    # a floor below the KL changes nothing
    assert loss(KLControl(weight=1.0, floor=1e-6)) == pytest.approx(-(recon - kl.sum(1)).sum(), abs=0.15)


def test_kl_floor_removes_the_kl_gradient_of_the_guide():
    model, guide, x = _linear_gaussian()
    objective = make_objective("meanfield", 1, kl=KLControl(weight=1.0, floor=50.0))
    pyro.set_rng_seed(0)
    loss = objective.differentiable_loss(model.model, guide.guide, x)
    grad_floored = torch.autograd.grad(loss, guide.head.bias)
    # with the KL floored away, the guide only feels the reconstruction term
    pyro.set_rng_seed(0)
    recon_only = make_objective("meanfield", 1, kl=KLControl(weight=0.0)).differentiable_loss(
        model.model, guide.guide, x
    )
    grad_recon = torch.autograd.grad(recon_only, guide.head.bias)
    torch.testing.assert_close(grad_floored[0], grad_recon[0])


def test_kl_weight_inside_the_iwae_log_weights(tiny):
    model, guide, x = tiny
    K = 6
    objective = make_objective("iwae", K, kl=KLControl(weight=0.25))
    pyro.set_rng_seed(9)
    loss = objective.loss(model.model, guide.guide, x)
    pyro.set_rng_seed(9)
    _, guide_trace = IWAE(num_particles=K)._get_trace(model.model, guide.guide, (x,), {})
    z = guide_trace.nodes["z"]["value"].detach().double().numpy()
    xn = x.double().numpy()
    log_w = _numpy_log_weights(model, guide, xn, z)
    logits = _mlp_numpy(model.decoder.net, z)
    log_lik = (xn * logits - np.logaddexp(0.0, logits)).sum(-1)
    weighted = log_lik + 0.25 * (log_w - log_lik)
    assert loss == pytest.approx(-(_logsumexp(weighted, 0) - np.log(K)).sum(), rel=1e-5)


DENSITY_OBJECTIVES = ["elbo", "meanfield", "iwae", "elbo-stl", "iwae-stl", "iwae-dreg"]


@pytest.mark.parametrize("particles", [1, 3])
@pytest.mark.parametrize("guide_name", ["mlp", "lowrank", "full", "iaf", "delta", "conditional"])
@pytest.mark.parametrize("name", DENSITY_OBJECTIVES)
def test_contract_traces_give_the_traced_value_and_gradients(name, guide_name, particles, monkeypatch):
    """The directly written traces (``contract_traces``), and meanfield's loss written without them,
    against Pyro's traced programs, same seed: the same loss and gradients, and the direct path
    (``contract_call`` finding a contract pair) was the one taken."""
    from guides import GUIDES
    from pvae import objectives

    if guide_name == "delta" and name not in ("elbo", "meanfield"):
        pytest.skip("a point estimate has no density")
    torch.manual_seed(2)
    classes = 3 if guide_name == "conditional" else 0
    model = GaussianVAE(data_dim=6, latent_dim=3, hidden=[5], num_classes=classes)
    cls = GUIDES["mlp" if classes else guide_name]
    guide = cls(data_dim=6, latent_dim=3, hidden=[4], **({"num_classes": classes} if classes else {}))
    x, y = torch.bernoulli(torch.full((4, 6), 0.4)), (torch.arange(4) % 3 if classes else None)
    params = [*model.parameters(), *guide.parameters()]
    taken = []
    direct = objectives.base.contract_call

    def spy(*args):
        call = direct(*args)
        taken.append(call is not None)
        return call

    for module in (objectives.base, objectives.elbo):  # where the objectives look it up
        monkeypatch.setattr(module, "contract_call", spy)

    def value_and_grads(wrapped: bool):
        pyro.set_rng_seed(7)
        with pyro.validation_enabled(False), poutine.block() if wrapped else torch.enable_grad():
            loss = make_objective(name, particles).differentiable_loss(model.model, guide.guide, x, y)
        return loss.item(), torch.autograd.grad(loss, params, allow_unused=True)

    traced = value_and_grads(wrapped=True)  # a handler around the call: Pyro's traces
    assert not any(taken)
    taken.clear()
    written = value_and_grads(wrapped=False)
    assert taken and (all(taken) if name != "iwae-dreg" else not any(taken))  # DReG wraps the model: traced
    assert written[0] == traced[0]
    for a, b in zip(written[1], traced[1]):
        assert (a is None and b is None) or torch.equal(a, b)


def test_contract_traces_stay_out_of_pyro_svi_and_validation(tiny, monkeypatch):
    """Under ``pyro.infer.SVI`` (a parameter-capturing handler) and with validation on, the
    programs are traced, so SVI still finds the parameters and validation still checks them."""
    from pvae import objectives

    model, guide, x = tiny
    args = (model.model, guide.guide, (x,), {}, None, -1)
    with pyro.validation_enabled(False):
        assert objectives.contract_traces(*args) is not None
        with poutine.trace(param_only=True):
            assert objectives.contract_traces(*args) is None
    with pyro.validation_enabled(True):
        assert objectives.contract_traces(*args) is None
    results = []
    direct = objectives.contract_traces
    monkeypatch.setattr(objectives.base, "contract_traces", lambda *a: results.append(direct(*a)) or results[-1])
    svi = pyro.infer.SVI(model.model, guide.guide, pyro.optim.Adam({"lr": 0.1}), loss=make_objective("meanfield"))
    before = [p.detach().clone() for p in guide.parameters()]
    with pyro.validation_enabled(False):
        svi.step(x)
    assert results and all(r is None for r in results)
    assert not any(torch.equal(a, b) for a, b in zip(before, guide.parameters()))  # SVI found them
