"""The Model and Guide contracts (docs/architecture.md, ``pvae.contracts``) for every registered class:
declared capabilities that are true, Pyro's conventions (``Predictive`` from the prior with no
data), and run folders of the original layouts (``mlp``, ``rnn``, ``cvae`` before they became
configurations of ``DiagGuide`` and ``GaussianVAE``) still loading.

Only ``models``, ``guides``, ``pvae.contracts``, ``pvae.layers`` and ``pvae.distributions`` are imported: the trainer and
the commands meet these classes through the same attributes.
"""  # noqa: E501

from __future__ import annotations

import inspect
import io

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Predictive
from torch import nn
from torch.distributions import Independent, constraints, kl_divergence
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from guides import GUIDES, DiagGuide, LinearGuide, MLPGuide, RNNGuide
from models import MODELS, GaussianVAE
from models.cvae import CVAE
from pvae.contracts import Guide, Model
from pvae.distributions.priors import standard_normal
from pvae.distributions.strokes import sketch_lengths
from pvae.distributions.svg import ROW, USES
from pvae.layers import MIN_SCALE

pytestmark = pytest.mark.usefixtures("one_thread")

D, T, Z, C = 16, 12, 3, 4  # pixels (a 4x4 image), stroke rows, latent dims, classes
V, BARS = 7, 2  # melody tokens, bars of a melody window (16 steps each)
DS, TS = 256, 5  # svg glyphs: pixels (a 16x16 image) and command rows
KINDS = ("image", "strokes", "events", "svg")
SIZE_ARGUMENT = {"image": "data_dim", "strokes": "max_len", "events": "vocab", "svg": "data_dim"}  # the trainer's


def _sketches(b: int, seed: int = 0) -> torch.Tensor:
    """``b`` padded stroke-5 sketches ``(b, T, 5)`` of 3 to T - 1 points (pen down, some lifts), then
    padding rows (0, 0, 0, 0, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(b, T, 5)
    x[..., 4] = 1.0
    for i in range(b):
        n = int(torch.randint(3, T, (), generator=g))
        x[i, :n, :2] = torch.randn(n, 2, generator=g)
        x[i, :n, 4] = 0.0
        lifted = torch.rand(n, generator=g) < 0.3
        x[i, :n, 2], x[i, :n, 3] = (~lifted).float(), lifted.float()
    return x


def _images(b: int, seed: int = 0) -> torch.Tensor:
    return torch.bernoulli(torch.full((b, D), 0.4), generator=torch.Generator().manual_seed(seed))


def _melodies(b: int, seed: int = 0) -> torch.Tensor:
    """``b`` melody windows of event tokens ``(b, 16 BARS)`` in 0..V-1."""
    return torch.randint(V, (b, 16 * BARS), generator=torch.Generator().manual_seed(seed))


def _glyphs(b: int, seed: int = 0) -> torch.Tensor:
    """``b`` svg glyph rows ``(b, DS + TS * 7)``: binary pixels, then 2 to TS - 1 commands (moveTo,
    lineTo or curveTo, with the arguments each uses) and EOS rows."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(2, (b, DS), generator=g).float()
    rows = torch.zeros(b, TS, ROW)
    for i in range(b):
        n = 2 + i % (TS - 2)
        rows[i, :n, 0] = torch.randint(1, 4, (n,), generator=g).float()
        rows[i, :n, 1:] = torch.randn(n, 6, generator=g) * torch.tensor(USES)[rows[i, :n, 0].long()]
    return torch.cat([pixels, rows.flatten(1)], -1)


def _model(name: str, **kw) -> Model:
    """A tiny instance of the registered model ``name``."""
    sizes = {
        "gaussian": dict(data_dim=D, latent_dim=Z, hidden=[5]),
        "linear": dict(data_dim=D, latent_dim=Z),
        "sketch": dict(max_len=T, latent_dim=Z, dec_hidden=8, mixtures=2),
        "cvae": dict(data_dim=D, num_classes=C, latent_dim=Z, hidden=[5]),
        "completion": dict(data_dim=D, latent_dim=Z, hidden=[5], baseline_epochs=1),
        "strokes-raster": dict(data_dim=D, latent_dim=Z, hidden=[5], segments=2),
        "melody": dict(steps=16 * BARS, vocab=V, bars=BARS, latent_dim=Z, dec_hidden=6, conductor_hidden=5),
        "svg-vae": dict(data_dim=DS, max_commands=TS - 1, num_classes=C, latent_dim=Z, dec_hidden=6, mixtures=2),
    }[name]
    return MODELS[name](**{**sizes, **kw})


def _guide(name: str, kind: str, **kw) -> Guide:
    """A tiny instance of the registered guide ``name`` for data of ``kind``."""
    if name == "mlp":
        return MLPGuide(DS if kind == "svg" else D, Z, hidden=[5], **kw)
    if name == "rnn":
        return RNNGuide(Z, 8, **kw)
    if name == "linear":
        return LinearGuide(D, Z, **kw)
    size = {"image": dict(data_dim=D, hidden=[5]), "strokes": dict(max_len=T, enc_hidden=8)}
    size["events"], size["svg"] = dict(vocab=V, enc_hidden=8), dict(data_dim=DS, hidden=[5])
    return GUIDES[name](latent_dim=Z, **size[kind], **kw)


def _batch(model: Model, b: int = 3, seed: int = 0):
    """Data x of the model's kind and its condition y (labels, or the visible image)."""
    x = {"image": _images, "strokes": _sketches, "events": _melodies, "svg": _glyphs}[model.data_kind](b, seed)
    labels = torch.arange(b) % C if model.num_classes else None
    return x, model.condition(x, labels)


# Every (guide, kind, constructor arguments) a registered guide offers; the linear guide twice.
GUIDE_CASES = [
    (name, kind, kw)
    for name, cls in GUIDES.items()
    for kind in cls.data_kinds
    for kw in ([{"covariance": "diag"}, {"covariance": "full"}] if name == "linear" else [{}])
]
MODEL_CASES = [
    "gaussian",
    "linear",
    "sketch",
    "cvae",
    "completion",
    "strokes-raster",
    "cvae-learned-prior",
    "gaussian-conditional",
    "strokes-raster-neural-bezier",
    "melody",
    "melody-flat",
    "svg-vae",
]


def _model_case(case: str) -> Model:
    if case == "cvae-learned-prior":
        return _model("cvae", learned_prior=True)
    if case == "gaussian-conditional":
        return _model("gaussian", num_classes=C)
    if case == "melody-flat":
        return _model("melody", decoder="flat")
    if case == "svg-vae":
        return _model("svg-vae", vae_first=0.0)
    if case == "strokes-raster-neural-bezier":
        return _model("strokes-raster", renderer="neural", primitive="bezier", renderer_steps=5)
    return _model(case)


# --- declared capabilities -------------------------------------------------------------------


def test_registries_hold_the_names():
    assert set(MODELS) == {"gaussian", "linear", "sketch", "cvae", "completion", "strokes-raster", "melody", "svg-vae"}
    assert set(GUIDES) == {"mlp", "linear", "rnn", "diag", "lowrank", "full", "iaf", "delta"}
    assert all(issubclass(cls, Model) for cls in MODELS.values())
    assert all(issubclass(cls, Guide) for cls in GUIDES.values())


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_declares_its_capabilities(name):
    cls = MODELS[name]
    assert cls.data_kind in KINDS  # declared: the base class has no default
    # The constructor takes the size of its data kind (the trainer passes data_dim, max_len or vocab).
    params = inspect.signature(cls).parameters
    assert SIZE_ARGUMENT[cls.data_kind] in params
    assert isinstance(cls.binary, bool) and isinstance(cls.supports_completion, bool)
    assert isinstance(cls.train_defaults, dict) and isinstance(cls.num_classes, int)
    assert cls.supports_completion == callable(getattr(cls, "complete", None))
    assert cls.supports_vectorise == all(callable(getattr(cls, name, None)) for name in ("strokes", "render"))
    assert callable(cls.pretrain) and callable(cls.init_output_bias) and callable(cls.set_progress)


def test_the_base_classes_declare_safe_defaults_and_no_data_kind():
    assert (Model.binary, Model.supports_completion, Model.train_defaults, Model.num_classes) == (False, False, {}, 0)
    assert Model.supports_vectorise is False
    assert (Guide.analytic_kl, Guide.factorised, Guide.density) == (False, False, True)
    assert not hasattr(Model, "data_kind") and not hasattr(Guide, "data_kinds")
    assert MODELS["cvae"].train_defaults == {"conditional": True} and MODELS["gaussian"].train_defaults == {}
    assert MODELS["sketch"].train_defaults["guide"] == "rnn"


@pytest.mark.parametrize("name", list(GUIDES))
def test_every_guide_declares_its_capabilities(name):
    cls = GUIDES[name]
    assert cls.data_kinds and set(cls.data_kinds) <= set(KINDS)
    assert isinstance(cls.analytic_kl, bool) and isinstance(cls.factorised, bool) and isinstance(cls.density, bool)
    assert cls.density or not cls.factorised  # a point estimate has no factors
    expected = {
        "mlp": ("image", "svg"),
        "rnn": ("strokes",),
        "linear": ("image",),
    }.get(name, KINDS)
    assert cls.data_kinds == expected


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_capabilities_are_true(case):
    """``binary`` iff p(x | z) refuses grey pixels; ``supports_completion`` iff ``complete`` draws
    completions; ``num_classes`` iff the likelihood reads the labels; the hooks run."""
    torch.manual_seed(0)
    model = _model_case(case)
    x, y = _batch(model)
    z = model.prior(3, y).sample()
    likelihood = model.likelihood(z, y)
    if model.data_kind == "image":
        grey = torch.full_like(x, 0.5)
        assert model.binary == (not bool(likelihood.support.check(grey).all()))
        assert bool(likelihood.support.check(x).all())
    else:
        assert not model.binary
    if model.supports_completion:
        assert model.complete(y, 2).shape == (2, *x.shape)
    if model.num_classes:
        other = model.likelihood(z, (y + 1) % model.num_classes)
        assert not torch.allclose(likelihood.log_prob(x), other.log_prob(x))
        with pytest.raises(ValueError, match="give the labels y"):
            model.likelihood(z).log_prob(x)
    # The hooks: init_output_bias starts the decoder at the data mean (image models that have a
    # decoder bias), pretrain trains only the completion model's baseline and a neural renderer.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lines = []
    model.pretrain(lambda: [(x, None)], lines.append)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    pretrained = "baseline." if model.supports_completion else "renderer." if case.endswith("neural-bezier") else None
    assert changed == {k for k in before if pretrained and k.startswith(pretrained)}
    assert bool(lines) == (pretrained is not None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mean = torch.linspace(0.2, 0.8, DS if model.data_kind == "svg" else D)
    model.init_output_bias(mean if model.data_kind in ("image", "svg") else torch.zeros(T, 5))
    if isinstance(model, GaussianVAE):  # Burda et al.: Bernoulli bias = logit of the mean
        torch.testing.assert_close(model.decoder.net[-1].bias, torch.logit(mean) if model.binary else mean)
    elif case == "svg-vae":  # the pixel logits start at logit of the mean glyph
        torch.testing.assert_close(model.pixel_bias, torch.logit(mean))
    elif case == "linear":  # the maximum-likelihood b of pPCA
        torch.testing.assert_close(model.bias, mean)
    else:  # no-ops: the sketch model, and the completion model (its baseline fills the hidden part)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _compatible(kind: str):
    return [case for case in MODEL_CASES if _model_case(case).data_kind == kind]


@pytest.mark.parametrize(
    "name, kind, kw", GUIDE_CASES, ids=["-".join([n, k, *kw.values()]) for n, k, kw in GUIDE_CASES]
)
def test_guide_capabilities_are_true_against_every_model_of_its_kind(name, kind, kw):
    """``analytic_kl`` iff torch's ``kl_divergence(q, p)`` works for every model's prior (and then
    equals E_q[log q - log p]); ``factorised`` iff q is ``Independent`` over one distribution per
    dimension; the guide reads its data kinds (batch ``(B,)``, event ``(Z,)``)."""
    torch.manual_seed(1)
    for case in _compatible(kind):
        model = _model_case(case)
        labels = {"num_classes": model.num_classes} if model.num_classes and name != "linear" else {}
        guide = _guide(name, kind, **kw, **labels)  # the linear guide reads no labels (and ignores y)
        assert guide.latent_dim == model.latent_dim
        x, y = _batch(model)
        q, p = guide.posterior(x, y), model.prior(x.shape[0], y)
        assert (q.batch_shape, q.event_shape) == ((3,), (Z,))
        try:
            kl = kl_divergence(q, p)
        except NotImplementedError:
            kl = None
        assert guide.analytic_kl == (kl is not None), (name, kw, case)
        if kl is not None:
            with torch.no_grad():
                draws = q.sample((20000,))
                estimate = (q.log_prob(draws) - p.log_prob(draws)).mean(0)
            torch.testing.assert_close(kl.detach(), estimate, atol=0.06, rtol=0.02)
        factorised = (
            isinstance(q, Independent) and q.reinterpreted_batch_ndims == 1 and q.base_dist.batch_shape == (3, Z)
        )
        assert guide.factorised == factorised, (name, kw)
    # The class states what holds for every configuration; an instance may refine it.
    cls = GUIDES[name]
    assert cls.analytic_kl == guide.analytic_kl and (not cls.factorised or guide.factorised)


def test_meanfield_with_the_full_linear_guide_is_the_exact_elbo():
    """The full-covariance linear guide's KL is analytic now (``FullCovarianceNormal``): Pyro's
    ``TraceMeanField_ELBO`` uses it, and it equals torch's dense Gaussian KL."""
    torch.manual_seed(2)
    guide = LinearGuide(D, Z, covariance="full")
    with torch.no_grad():
        guide.raw_scale.normal_(0, 0.5)
    x = _images(3)
    q = guide.posterior(x)
    dense = torch.distributions.MultivariateNormal(q.loc, scale_tril=q.scale_tril)
    prior = standard_normal(3, Z, x)
    dense_prior = torch.distributions.MultivariateNormal(torch.zeros(3, Z), torch.eye(Z))
    torch.testing.assert_close(kl_divergence(q, prior), kl_divergence(dense, dense_prior))


# --- Pyro conventions --------------------------------------------------------------------------


@pytest.mark.parametrize("case", MODEL_CASES)
@pytest.mark.parametrize("parallel", [False, True])
def test_predictive_draws_from_the_prior_with_no_data(case, parallel):
    """``Predictive(model.model, num_samples=S)()`` runs the model with no data: z from the prior,
    x from the likelihood, as in Pyro's examples; a conditional model takes only y."""
    torch.manual_seed(3)
    model = _model_case(case)
    x, y = _batch(model)
    args = () if y is None else (None, y)
    b = 1 if y is None else 3
    samples = Predictive(model.model, num_samples=4, parallel=parallel)(*args)
    latent = () if model.latent_dim == 0 else ("z",)
    assert set(samples) == {"x", *latent}
    assert samples["x"].shape == (4, b, *x.shape[1:])
    assert not torch.equal(samples["x"][0], samples["x"][1])  # drawn, not a constant
    if latent:
        assert samples["z"].shape == (4, b, Z)
    drawn = samples["x"]
    if model.data_kind == "image":
        assert model.likelihood(samples["z"], y).support.check(drawn).all()
    elif model.data_kind == "events":
        assert drawn.dtype == torch.long and ((drawn >= 0) & (drawn < V)).all()  # tokens of the vocabulary
    elif model.data_kind == "svg":  # pixels in {0, 1}, then command ids 0-3
        assert drawn[..., :DS].eq(drawn[..., :DS].round()).all()
        assert torch.isin(drawn[..., DS:].unflatten(-1, (TS, ROW))[..., 0], torch.arange(4.0)).all()
    else:
        assert drawn[..., 2:].sum(-1).eq(1).all()  # one-hot pen states: stroke-5 rows
    # batch_size gives B when there are neither data nor a condition
    if y is None:
        assert Predictive(model.model, num_samples=2)(batch_size=5)["x"].shape == (2, 5, *x.shape[1:])


def test_predictive_samples_follow_the_prior_and_the_likelihood():
    """Many draws: z ~ N(0, I), and the pixel frequencies are the mean of p(x | z) over those z."""
    torch.manual_seed(4)
    model = _model("gaussian")
    samples = Predictive(model.model, num_samples=4000, parallel=True)()
    z, x = samples["z"][:, 0], samples["x"][:, 0]
    torch.testing.assert_close(z.mean(0), torch.zeros(Z), atol=0.06, rtol=0)
    torch.testing.assert_close(z.var(0), torch.ones(Z), atol=0.08, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(x.mean(0), model.likelihood(z).mean.mean(0), atol=0.03, rtol=0)


def test_the_completion_model_draws_given_the_visible_part():
    torch.manual_seed(5)
    model = _model("completion")
    x, y = _batch(model)
    samples = Predictive(model.model, num_samples=2)(None, y)
    assert samples["x"].shape == (2, 3, D) and samples["z"].shape == (2, 3, Z)
    assert set(samples["x"].unique().tolist()) <= {0.0, 1.0}


def test_posterior_predictive_runs_model_and_guide_with_the_same_arguments():
    torch.manual_seed(6)
    model, guide = _model("cvae"), _guide("mlp", "image", num_classes=C)
    x, y = _batch(model)
    predictive = Predictive(pyro.poutine.uncondition(model.model), guide=guide.guide, num_samples=3)
    samples = predictive(x, y, batch_size=None)  # model and guide get the same arguments
    assert samples["z"].shape == (3, 3, Z) and samples["x"].shape == (3, 3, D)  # x' ~ p(x | z, y), z ~ q(z | x, y)
    assert set(samples["x"].unique().tolist()) <= {0.0, 1.0}
    q = guide.posterior(x, y)
    trace = pyro.poutine.trace(guide.guide).get_trace(x, y, batch_size=7)  # batch_size is ignored
    assert trace.nodes["z"]["value"].shape == (3, Z)
    assert type(trace.nodes["z"]["fn"]) is type(q)


def test_model_called_positionally_scores_the_data():
    """``model(x, y)``, as the objectives call it: x observed, B from x."""
    model = _model("cvae")
    x, y = _batch(model)
    trace = pyro.poutine.trace(model.model).get_trace(x, y)
    assert trace.nodes["x"]["is_observed"] and torch.equal(trace.nodes["x"]["value"], x)
    assert trace.nodes["z"]["value"].shape == (3, Z)
    z = trace.nodes["z"]["value"]
    torch.testing.assert_close(trace.nodes["x"]["fn"].log_prob(x), model.likelihood(z, y).log_prob(x))


# --- configurations instead of near-copies -----------------------------------------------------


def test_one_min_scale_and_one_standard_normal_prior():
    import guides.heads
    import guides.linear

    assert guides.heads.MIN_SCALE is MIN_SCALE and guides.linear.MIN_SCALE is MIN_SCALE
    for name in ("gaussian", "linear", "sketch", "cvae"):
        p = _model(name).prior(4)
        assert isinstance(p, Independent) and (p.batch_shape, p.event_shape) == ((4,), (Z,))
        assert torch.equal(p.base_dist.loc, torch.zeros(4, Z)) and torch.equal(p.base_dist.scale, torch.ones(4, Z))
    assert not {"prior"} & (set(vars(MODELS["linear"])) | set(vars(MODELS["sketch"])))  # Model.prior's N(0, I)
    assert _model("linear").double().prior(2).base_dist.loc.dtype == torch.float64  # follows the module


def test_mlp_and_rnn_guides_are_diag_guide_configurations():
    assert issubclass(MLPGuide, DiagGuide) and issubclass(RNNGuide, DiagGuide)
    mlp, rnn = MLPGuide(784, latent_dim=20), RNNGuide(4, 8)  # the README's plain-Pyro snippet
    assert (mlp.kind, mlp.head.scale, rnn.kind, rnn.head.scale) == ("mlp", "softplus", "rnn", "logvar")
    # their constructors take the original arguments, and no others (so a trainer that passes every
    # option its constructor names cannot change their trunk or their sigma)
    assert list(inspect.signature(MLPGuide).parameters) == [
        "data_dim",
        "latent_dim",
        "hidden",
        "activation",
        "scale",
        "num_classes",
    ]
    assert list(inspect.signature(RNNGuide).parameters) == ["latent_dim", "enc_hidden", "num_classes"]
    torch.manual_seed(7)
    diag = DiagGuide(latent_dim=4, max_len=T, enc_hidden=8, scale="logvar")
    rnn.load_state_dict(diag.state_dict())
    x = _sketches(3)
    a, b = rnn.posterior(x), diag.posterior(x)
    torch.testing.assert_close((a.base_dist.loc, a.base_dist.scale), (b.base_dist.loc, b.base_dist.scale))
    # the log-variance head: sigma = exp(r / 2) + MIN_SCALE
    r = F.linear(rnn.trunk(x), rnn.head.weight, rnn.head.bias)[:, 4:]
    torch.testing.assert_close(a.base_dist.scale, torch.exp(r / 2) + MIN_SCALE)


def test_cvae_is_the_class_conditional_gaussian_vae():
    assert issubclass(CVAE, GaussianVAE)
    params = inspect.signature(GaussianVAE).parameters
    assert {"num_classes", "learned_prior"} <= set(params) and params["num_classes"].default == 0
    with pytest.raises(ValueError, match="at least 2 classes"):
        CVAE(D, 1)
    with pytest.raises(ValueError, match="learned_prior needs class labels"):
        GaussianVAE(D, learned_prior=True)
    torch.manual_seed(8)
    cvae = CVAE(D, C, latent_dim=Z, hidden=[5], learned_prior=True)
    gaussian = GaussianVAE(D, Z, [5], num_classes=C, learned_prior=True)
    gaussian.load_state_dict(cvae.state_dict())
    cvae.load_state_dict(gaussian.state_dict())
    with torch.no_grad():
        cvae.prior_net.weight.normal_()
        gaussian.prior_net.weight.copy_(cvae.prior_net.weight)
    x, y = _batch(cvae)
    z = torch.randn(2, 3, Z)
    torch.testing.assert_close(gaussian.likelihood(z, y).log_prob(x), cvae.likelihood(z, y).log_prob(x))
    torch.testing.assert_close(gaussian.prior(3, y).log_prob(z), cvae.prior(3, y).log_prob(z))


# --- run folders of the original layouts ----------------------------------------------------------
# The classes below are the original ``mlp`` and ``rnn`` guides and ``cvae`` model (git history:
# guides/mlp.py, guides/rnn.py, models/cvae.py before the contracts issue), built from torch modules
# under their original parameter names, with their original posterior and likelihood.


class OldMLPGuide(nn.Module):
    def __init__(self, data_dim, latent_dim=20, hidden=(400,), activation="relu", scale="softplus", num_classes=0):
        super().__init__()
        assert activation == "relu"
        self.scale, self.num_classes = scale, num_classes
        sizes = [data_dim + num_classes, *hidden]
        self.trunk = nn.Sequential(*[m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(sizes[-1], 2 * latent_dim)

    def posterior(self, x, y=None):
        inputs = x.reshape(x.shape[0], -1)
        if self.num_classes:
            inputs = torch.cat([inputs, F.one_hot(y, self.num_classes).to(inputs)], -1)
        loc, raw = self.head(self.trunk(inputs)).chunk(2, dim=-1)
        sigma = F.softplus(raw) if self.scale == "softplus" else torch.exp(raw)
        return dist.Normal(loc, sigma + 1e-5).to_event(1)


class OldRNNGuide(nn.Module):
    def __init__(self, latent_dim=128, enc_hidden=256, num_classes=0):
        super().__init__()
        self.num_classes = num_classes
        self.rnn = nn.LSTM(5, enc_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * enc_hidden + num_classes, 2 * latent_dim)

    def posterior(self, x, y=None):
        lengths = sketch_lengths(x).clamp(min=1).cpu()
        _, (h, _) = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        features = torch.cat([h[0], h[1]], -1)
        if self.num_classes:
            features = torch.cat([features, F.one_hot(y, self.num_classes).to(features)], -1)
        mu, presig = self.head(features).chunk(2, dim=-1)
        return dist.Normal(mu, torch.exp(presig / 2)).to_event(1)


class OldPixelDecoder(nn.Module):
    def __init__(self, in_dim, data_dim, hidden, likelihood, obs_scale):
        super().__init__()
        self.likelihood, self.obs_scale = likelihood, obs_scale
        sizes = [in_dim, *hidden, data_dim]
        layers = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
        self.net = nn.Sequential(*layers)
        learned = likelihood == "gaussian" and obs_scale is None
        self.raw_scale = nn.Parameter(torch.randn(data_dim)) if learned else None


class OldCVAE(nn.Module):
    def __init__(self, data_dim, num_classes, latent_dim=20, hidden=(400,), activation="relu", likelihood="bernoulli",
                 obs_scale=None, learned_prior=False):  # fmt: skip
        super().__init__()
        self.num_classes = num_classes
        self.decoder = OldPixelDecoder(latent_dim + num_classes, data_dim, hidden, likelihood, obs_scale)
        self.prior_net = nn.Embedding(num_classes, 2 * latent_dim) if learned_prior else None

    def log_likelihood(self, x, z, y):
        code = F.one_hot(y, self.num_classes).to(z).expand(*z.shape[:-1], self.num_classes)
        out = self.decoder.net(torch.cat([z, code], -1))
        if self.decoder.likelihood == "bernoulli":
            return torch.distributions.Bernoulli(logits=out).log_prob(x.expand_as(out)).sum(-1)
        scale = (
            F.softplus(self.decoder.raw_scale) + 1e-2 if self.decoder.raw_scale is not None else self.decoder.obs_scale
        )
        return torch.distributions.Normal(out, scale).log_prob(x).sum(-1)

    def prior_log_prob(self, z, y):
        loc, raw = self.prior_net(y).chunk(2, dim=-1)
        return torch.distributions.Normal(loc, F.softplus(raw + 0.5413248546129181)).log_prob(z).sum(-1)


def _checkpoint_round_trip(state: dict) -> dict:
    """A state dict as a run folder's checkpoint gives it back (``torch.save``, ``weights_only`` load)."""
    buffer = io.BytesIO()
    torch.save({"guide": state}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)["guide"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(data_dim=D, latent_dim=Z, hidden=[6, 5], activation="relu", scale="softplus", num_classes=0),
        dict(data_dim=D, latent_dim=Z, hidden=[5], activation="relu", scale="exp", num_classes=C),
    ],
)
def test_old_mlp_run_folders_load(kwargs):
    torch.manual_seed(9)
    old = OldMLPGuide(**kwargs)
    new = GUIDES["mlp"](**kwargs)  # the config's name and constructor arguments
    new.load_state_dict(_checkpoint_round_trip(old.state_dict()))  # strict: every key, no other
    assert [k for k, _ in new.named_parameters()] == [k for k, _ in old.named_parameters()]  # optimiser state order
    x, y = _images(4), torch.arange(4) % C
    a, b = old.posterior(x, y), new.posterior(x, y)
    torch.testing.assert_close((a.base_dist.loc, a.base_dist.scale), (b.base_dist.loc, b.base_dist.scale))


@pytest.mark.parametrize("num_classes", [0, C])
def test_old_rnn_run_folders_load(num_classes):
    torch.manual_seed(10)
    kwargs = dict(latent_dim=Z, enc_hidden=8, num_classes=num_classes)
    old = OldRNNGuide(**kwargs)
    assert {k.split(".")[0] for k in old.state_dict()} == {"rnn", "head"}  # the original layout
    state = _checkpoint_round_trip(old.state_dict())
    new = GUIDES["rnn"](**kwargs)
    new.load_state_dict(state)  # strict
    # the same parameters in the same order, so a saved optimiser state resumes too
    assert [k.removeprefix("trunk.") for k, _ in new.named_parameters()] == [k for k, _ in old.named_parameters()]
    assert set(state) == set(old.state_dict())  # the caller's dict is not rewritten
    x, y = _sketches(5, seed=1), torch.arange(5) % C
    a, b = old.posterior(x, y), new.posterior(x, y)
    torch.testing.assert_close(b.base_dist.loc, a.base_dist.loc)
    torch.testing.assert_close(b.base_dist.scale, a.base_dist.scale + MIN_SCALE)  # the one floor, now shared
    # New checkpoints keep the new names and load back; so does an old layout nested in a module.
    assert all(k.startswith(("trunk.rnn.", "head.")) for k in new.state_dict())
    GUIDES["rnn"](**kwargs).load_state_dict(new.state_dict())
    holder = nn.ModuleDict({"guide": GUIDES["rnn"](**kwargs)})
    holder.load_state_dict({f"guide.{k}": v for k, v in state.items()})
    torch.testing.assert_close(holder["guide"].posterior(x, y).mean, b.mean)
    # A checkpoint that lacks a weight is still refused.
    broken = {k: v for k, v in state.items() if k != "rnn.weight_hh_l0"}
    with pytest.raises(RuntimeError, match="trunk.rnn.weight_hh_l0"):
        GUIDES["rnn"](**kwargs).load_state_dict(broken)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(likelihood="bernoulli", obs_scale=None, learned_prior=True),
        dict(likelihood="gaussian", obs_scale=None, learned_prior=False),
        dict(likelihood="gaussian", obs_scale=0.3, learned_prior=True),
    ],
)
def test_old_cvae_run_folders_load_and_gaussian_vae_with_classes_is_the_old_cvae(kwargs):
    """An old ``cvae`` config (data_dim, num_classes, latent_dim, hidden, activation, likelihood,
    obs_scale, learned_prior) builds, its checkpoint loads, and ``GaussianVAE(num_classes=C)`` with
    the same weights has the old log p(x | z, y) and p(z | y)."""
    torch.manual_seed(11)
    config = dict(data_dim=D, num_classes=C, latent_dim=Z, hidden=[6, 5], activation="relu", **kwargs)
    old = OldCVAE(**config)
    if old.prior_net is not None:
        with torch.no_grad():
            old.prior_net.weight.normal_()
    state = _checkpoint_round_trip(old.state_dict())
    cvae = MODELS["cvae"](**config)
    cvae.load_state_dict(state)
    gaussian = GaussianVAE(**config)
    gaussian.load_state_dict(state)
    assert [k for k, _ in cvae.named_parameters()] == [k for k, _ in old.named_parameters()]  # optimiser state order
    x = _images(4) if kwargs["likelihood"] == "bernoulli" else torch.rand(4, D)
    y, z = torch.tensor([0, 3, 1, 3]), torch.randn(2, 4, Z)
    for model in (cvae, gaussian):
        assert model.binary == (kwargs["likelihood"] == "bernoulli") and model.num_classes == C
        torch.testing.assert_close(model.likelihood(z, y).log_prob(x), old.log_likelihood(x, z, y))
        if old.prior_net is not None:
            torch.testing.assert_close(model.prior(4, y).log_prob(z), old.prior_log_prob(z, y))
        else:
            torch.testing.assert_close(model.prior(4, y).log_prob(z), standard_normal(4, Z, z).log_prob(z))


def test_old_gaussian_configs_build_unconditional():
    config = dict(data_dim=D, latent_dim=Z, hidden=[5], activation="relu", likelihood="bernoulli", obs_scale=None)
    model = MODELS["gaussian"](**config)
    assert model.num_classes == 0 and model.prior_net is None and model.decoder.net[0].in_features == Z
    assert isinstance(model.likelihood(torch.zeros(2, Z)).support, constraints.independent)
