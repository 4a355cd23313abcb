"""Why does pvae's ELBO run trail its peers by 1-2 nats? One factor at a time, in one process.

Every run trains the IWAE paper's 1-stochastic-layer network (encoder 784-200-200 tanh and a
linear layer to (mu, r), 50 each; decoder 50-200-200-784 tanh, Bernoulli logits, output bias at
the logit of the training pixel mean clamped to [1e-3, 1 - 1e-3], ``pvae.layers.PixelDecoder``) on the
fixed binarisation of MNIST, batch 20, Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8) at a constant
lr, and differs from the ``plain`` row (pythae's recipe) in what ``RUNS`` says. For each seed the
networks are built once (``torch.manual_seed(seed)``) and every run starts from a copy of those
weights, reads the same batches (a ``torch.Generator`` seeded per epoch) and draws its
reparameterisation noise from the global generator seeded the same way: each run draws one
(B, 50) standard normal per step through ``Normal.rsample`` (Pyro's guides included), so while two
runs' parameters agree they see the same z. The first step's loss per datapoint is printed for
every run: runs with the same estimator and sigma map agree there.

The ``pvae-*`` rows are pvae's own classes (``models.gaussian_vae.GaussianVAE``,
``guides.mlp.MLPGuide`` with ``scale`` logvar, exp or softplus; the last adds
``pvae.layers.MIN_SCALE`` = 1e-5 to sigma) and objectives (``pvae.objectives.make_objective``: ``elbo``,
``meanfield``) stepped by ``pvae.svi.SVI`` with ``pvae.svi.make_optimizer`` (fused Adam), as
``pvae.train.Trainer`` builds them with ``--lr-schedule constant``. What the trainer adds around the
step and these rows lack: flushing denormals to zero while training, its progress bar,
checkpoints and per-epoch test evaluations (none of which changes a step's arithmetic beyond
denormals).

pvae's step (``pvae.svi.SVI.step``) backpropagates the loss summed over the batch divided by B,
the batch mean, with the trainer's default Adam eps 1e-8: the same reduction as ``plain``. So
``plain-pvae`` repeats ``plain`` with pvae's step arithmetic and optimiser (summed / B, fused
Adam), and ``plain-sum`` isolates the other reduction, the one plain Pyro's ``SVI`` uses (the loss
summed over the batch at the same lr and eps: Adam is invariant to the scale of the loss except
through eps).

Every run is evaluated by this script's one evaluator, with the run's own q(z | x) as proposal:
log w = log p(x | z) + log N(z; 0, I) - log q(z | x) in float64, NLL = -(logsumexp_k log w - log k)
with ``--k`` draws, and the test ELBO as the mean of log w over 10 draws; the draws come from a
generator seeded by the seed alone, so every run of a seed is scored with the same noise. Test
images: the first ``--test-images`` of the test split in a seeded random order (``--test-order
shuffled``, the default: the order ``scripts/compare_bounds.py --seed 0`` uses; the split itself
is sorted by label, so its first 1000 images are 980 zeros and 20 ones) or as stored
(``--test-order first``).

Results are kept in ``--out`` (JSON) per (run, seed) and reused by a later invocation with the same
settings, so one comparison can be split over several invocations:

    python scripts/elbo_gap.py --data binarized_mnist.npz --out runs/elbo_gap.json
    python scripts/elbo_gap.py --data binarized_mnist.npz --out runs/elbo_gap.json --runs plain pvae-elbo-logvar
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from guides.mlp import MLPGuide
from models.gaussian_vae import GaussianVAE
from pvae.kinds.image.mnist import load_binarized_mnist
from pvae.layers import PixelDecoder, mlp
from pvae.memory import keep_freed_memory
from pvae.objectives import make_objective
from pvae.svi import SVI, make_optimizer

from tables import markdown

D, Z, HIDDEN, ACT = 784, 50, (200, 200), "tanh"  # the IWAE paper's 1-layer network
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8
ELBO_DRAWS = 10
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Run:
    """One row: how it trains.

    :param description: a line for the table's legend.
    :param loop: ``plain`` (a PyTorch loop here), ``pyro`` (``pyro.infer.SVI``) or ``pvae`` (``pvae.svi.SVI``).
    :param scale: sigma = exp(r / 2) (``logvar``), exp(r) (``exp``) or softplus(r) + 1e-5 (``softplus``, pvae only).
    :param kl: ``analytic`` (closed form), ``mc`` (log q(z) - log p(z) at the step's one draw of z) or
        ``stl`` (pvae only: ``mc`` with log q's parameters detached, sticking the landing).
    :param reduction: plain loop only: ``mean`` over the batch, ``sum``, or ``pvae`` (the sum divided
        by B, as ``pvae.svi.SVI.step`` does, with pvae's fused Adam).
    """

    description: str
    loop: str
    scale: str = "logvar"
    kl: str = "analytic"
    reduction: str = "mean"


RUNS: dict[str, Run] = {
    "plain": Run("PyTorch loop, pythae's recipe: sigma = exp(r/2), analytic KL, batch-mean loss", "plain"),
    "plain-mc": Run("as plain, KL by Monte Carlo at the step's draw of z", "plain", kl="mc"),
    "plain-exp": Run("as plain, sigma = exp(r)", "plain", scale="exp"),
    "plain-sum": Run(
        "as plain, loss summed over the batch (plain Pyro SVI's reduction), same lr", "plain", reduction="sum"
    ),
    "plain-pvae": Run(
        "as plain, pvae's step: summed loss / B, pvae.svi.make_optimizer (fused Adam)", "plain", reduction="pvae"
    ),
    "pyro-trace": Run("pyro.infer.SVI, Trace_ELBO, pyro.optim.Adam, sigma = exp(r/2)", "pyro", kl="mc"),
    "pyro-meanfield": Run("pyro.infer.SVI, TraceMeanField_ELBO, pyro.optim.Adam, sigma = exp(r/2)", "pyro"),
    "pvae-elbo-logvar": Run("pvae GaussianVAE + MLPGuide(scale=logvar), objective elbo, pvae.svi", "pvae", kl="mc"),
    "pvae-elbo-exp": Run("as pvae-elbo-logvar, MLPGuide(scale=exp)", "pvae", scale="exp", kl="mc"),
    "pvae-elbo-softplus": Run("as pvae-elbo-logvar, MLPGuide(scale=softplus)", "pvae", scale="softplus", kl="mc"),
    "pvae-meanfield-logvar": Run("as pvae-elbo-logvar, objective meanfield (analytic KL)", "pvae"),
    "pvae-meanfield-exp": Run("as pvae-meanfield-logvar, MLPGuide(scale=exp)", "pvae", scale="exp"),
    "pvae-meanfield-softplus": Run(
        "as pvae-meanfield-logvar, MLPGuide(scale=softplus): pvae train's objective and scale", "pvae", "softplus"
    ),
    "pvae-stl-softplus": Run("as pvae-elbo-softplus, objective elbo-stl", "pvae", scale="softplus", kl="stl"),
}


class Encoder(nn.Module):
    """(mu, r) = head(trunk(x)): parameters named as ``MLPGuide``'s (``trunk.0.weight``, ``head.bias``, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = mlp([D, *HIDDEN], ACT, final_activation=True)
        self.head = nn.Linear(HIDDEN[-1], 2 * Z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.head(self.trunk(x)).chunk(2, dim=-1)
        return mu, raw


def log_sigma(raw: torch.Tensor, scale: str) -> torch.Tensor:
    """log sigma of the plain and Pyro runs' guides: r / 2 (``logvar``) or r (``exp``)."""
    if scale == "logvar":
        return raw / 2
    if scale == "exp":
        return raw
    raise ValueError(f"the plain and Pyro runs take scale logvar or exp, not {scale!r}")


# A trained run as the evaluator sees it: x -> (mu, log sigma) of q(z | x), and z -> the logits of p(x | z).
Posterior = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Networks:
    """The initial weights of one seed, and how to build a run's modules from them."""

    encoder: dict[str, torch.Tensor]
    decoder: dict[str, torch.Tensor]

    @classmethod
    def build(cls, seed: int, pixel_mean: torch.Tensor) -> Networks:
        torch.manual_seed(seed)
        encoder, decoder = Encoder(), PixelDecoder(Z, D, HIDDEN, ACT)
        decoder.init_output_bias(pixel_mean)
        return cls(copy.deepcopy(encoder.state_dict()), copy.deepcopy(decoder.state_dict()))

    def plain(self) -> tuple[Encoder, PixelDecoder]:
        encoder, decoder = Encoder(), PixelDecoder(Z, D, HIDDEN, ACT)
        encoder.load_state_dict(self.encoder)
        decoder.load_state_dict(self.decoder)
        return encoder, decoder

    def pvae(self, scale: str) -> tuple[GaussianVAE, MLPGuide]:
        """pvae's model and guide with these weights; asserts the copy covers every parameter and buffer."""
        model = GaussianVAE(D, Z, hidden=HIDDEN, activation=ACT, likelihood="bernoulli")
        guide = MLPGuide(D, Z, hidden=HIDDEN, activation=ACT, scale=scale)
        model_state = {f"decoder.{k}": v for k, v in self.decoder.items()}
        for module, state in ((model, model_state), (guide, self.encoder)):
            names = set(module.state_dict())
            assert names == set(state), f"{type(module).__name__}: {sorted(names ^ set(state))} not covered"
            assert {n for n, _ in module.named_parameters()} <= names
            module.load_state_dict(state, strict=True)
        return model, guide


def batches(train: torch.Tensor, batch_size: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``steps`` batches of ``train``, epoch e in the order of a generator seeded by (seed, e)."""
    step, epoch = 0, 0
    while step < steps:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1_000_003 * seed + epoch))
        for start in range(0, len(train), batch_size):
            if step == steps:
                return
            yield train[order[start : start + batch_size]]
            step += 1
        epoch += 1


def plain_loss(encoder: Encoder, decoder: PixelDecoder, x: torch.Tensor, run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative ELBO of each datapoint ``(B,)`` and the loss to backpropagate."""
    mu, raw = encoder(x)
    log_s = log_sigma(raw, run.scale)
    q = torch.distributions.Normal(mu, log_s.exp())
    z = q.rsample()  # one (B, Z) standard normal from the global generator, as Pyro's guide draws it
    nll = F.binary_cross_entropy_with_logits(decoder.net(z), x, reduction="none").sum(-1)
    if run.kl == "analytic":  # pythae: -0.5 sum(1 + logvar - mu^2 - exp(logvar))
        kl = 0.5 * (mu.pow(2) + (2 * log_s).exp() - 1 - 2 * log_s).sum(-1)
    else:
        kl = (q.log_prob(z) + 0.5 * z.pow(2) + 0.5 * LOG_2PI).sum(-1)
    per = nll + kl
    if run.reduction == "mean":
        return per, per.mean()
    if run.reduction == "sum":
        return per, per.sum()
    return per, per.sum() / x.shape[0]  # pvae.svi.SVI.step: (summed / total).backward()


def train_plain(nets: Networks, run: Run, data: Iterator[torch.Tensor]) -> tuple[Posterior, Logits, list[float]]:
    encoder, decoder = nets.plain()
    params = [*encoder.parameters(), *decoder.parameters()]
    if run.reduction == "pvae":
        optimizer = make_optimizer(params, LR, betas=BETAS, eps=EPS)
    else:
        optimizer = torch.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS)
    losses = []
    for x in data:
        per, loss = plain_loss(encoder, decoder, x, run)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(per.mean().item())

    return plain_posterior(encoder, run.scale), decoder.net, losses


def plain_posterior(encoder: nn.Module, scale: str) -> Posterior:
    """x -> (mu, log sigma) of the plain and Pyro rows' encoder."""

    def posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = encoder(x)
        return mu, log_sigma(raw, scale)

    return posterior


def train_pyro(nets: Networks, run: Run, data: Iterator[torch.Tensor]) -> tuple[Posterior, Logits, list[float]]:
    pyro.clear_param_store()
    encoder, decoder = nets.plain()

    def model(x: torch.Tensor) -> None:
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], Z), x.new_ones(x.shape[0], Z)).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder.net(z)).to_event(1), obs=x)

    def guide(x: torch.Tensor) -> None:
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            mu, raw = encoder(x)
            pyro.sample("z", dist.Normal(mu, log_sigma(raw, run.scale).exp()).to_event(1))

    loss = pyro.infer.Trace_ELBO() if run.kl == "mc" else pyro.infer.TraceMeanField_ELBO()
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": LR}), loss=loss)
    losses = [svi.step(x) / x.shape[0] for x in data]  # Pyro's loss is summed over the plate

    return plain_posterior(encoder, run.scale), decoder.net, losses


def train_pvae(nets: Networks, run: Run, data: Iterator[torch.Tensor]) -> tuple[Posterior, Logits, list[float]]:
    pyro.clear_param_store()
    model, guide = nets.pvae(run.scale)
    objective = make_objective({"mc": "elbo", "analytic": "meanfield", "stl": "elbo-stl"}[run.kl], 1)
    optimizer = make_optimizer([*model.parameters(), *guide.parameters()], LR, betas=BETAS, eps=EPS)
    svi = SVI(model, guide, objective, optimizer)
    losses = [svi.step(x) for x in data]  # pvae's step returns the batch mean

    def posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = guide.posterior(x).base_dist  # Independent(Normal)
        return q.loc, q.scale.log()

    return posterior, model.decoder.net, losses


TRAINERS = {"plain": train_plain, "pyro": train_pyro, "pvae": train_pvae}


def untrained(nets: Networks, run: Run) -> tuple[Posterior, Logits]:
    """The run's posterior and decoder at its initial weights (its trainer with no steps)."""
    posterior, logits, _ = TRAINERS[run.loop](nets, run, iter(()))
    return posterior, logits


@torch.no_grad()
def log_weights(
    posterior: Posterior, logits: Logits, x: torch.Tensor, k: int, generator: torch.Generator, elements: int = 2**23
) -> torch.Tensor:
    """log w ``(k, N)`` in float64 for images ``x`` ``(N, D)``, z ~ q(z | x) drawn from ``generator``,
    ``elements`` pixel log-likelihoods at a time (a few hundred MiB at most)."""
    out = []
    images = max(1, min(len(x), elements // D))
    for xb in x.split(images):
        mu, log_s = posterior(xb)
        mu, log_s = mu.double(), log_s.double()
        draws = max(1, elements // (len(xb) * D))
        rows = []
        for start in range(0, k, draws):
            eps = torch.randn(min(draws, k - start), *mu.shape, generator=generator, dtype=torch.float64)
            z = mu + log_s.exp() * eps
            log_q = (-0.5 * eps.pow(2) - log_s - 0.5 * LOG_2PI).sum(-1)
            log_p_z = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
            bce = F.binary_cross_entropy_with_logits(logits(z.float()), xb.expand(len(z), *xb.shape), reduction="none")
            rows.append(log_p_z - log_q - bce.double().sum(-1))
        out.append(torch.cat(rows))
    return torch.cat(out, 1)


def evaluate(posterior: Posterior, logits: Logits, x: torch.Tensor, k: int, seed: int) -> dict[str, float]:
    """NLL = -L_k and the test ELBO (mean log w over ``ELBO_DRAWS`` draws), each with its standard error
    over images; the draws depend on ``seed`` alone."""
    lw = log_weights(posterior, logits, x, k, torch.Generator().manual_seed(seed))
    nll = -(torch.logsumexp(lw, 0) - math.log(k))
    elbo = log_weights(posterior, logits, x, ELBO_DRAWS, torch.Generator().manual_seed(seed + 1)).mean(0)
    n = len(x)
    return {
        "nll": nll.mean().item(),
        "nll_stderr": nll.std().item() / math.sqrt(n) if n > 1 else math.nan,
        "elbo": elbo.mean().item(),
        "elbo_stderr": elbo.std().item() / math.sqrt(n) if n > 1 else math.nan,
    }


def evaluate_elbo(posterior: Posterior, logits: Logits, x: torch.Tensor, seed: int) -> float:
    """The test ELBO alone, with ``evaluate``'s draws."""
    return log_weights(posterior, logits, x, ELBO_DRAWS, torch.Generator().manual_seed(seed + 1)).mean().item()


def initial_elbo(nets: Networks, run: Run, x: torch.Tensor, seed: int) -> float:
    """The test ELBO at the run's initial weights (the same for runs of one sigma map)."""
    posterior, logits = untrained(nets, run)
    return evaluate_elbo(posterior, logits, x, seed)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_results(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    return json.loads(path.read_text())["results"]


def save_results(path: Path | None, results: list[dict]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"results": results}, indent=1))
    tmp.replace(path)


def shown_command(argv: list[str]) -> str:
    """The command line with --data shortened to its file name."""
    shown, skip = [Path(sys.argv[0]).as_posix()], False
    for arg in argv:
        if skip:
            shown.append(Path(arg.removeprefix("binarized-mnist:")).name)
            skip = False
        elif arg.startswith("--data="):
            shown.append("--data=" + Path(arg.split("=", 1)[1].removeprefix("binarized-mnist:")).name)
        else:
            shown.append(arg)
            skip = arg == "--data"
    return "python " + " ".join(shown)


def table(results: list[dict], names: list[str], seeds: list[int]) -> str:
    columns = ["run", *(f"NLL seed {s}" for s in seeds), "NLL mean", "test ELBO mean", "train s"]
    body = []
    for name in names:
        rows = {r["seed"]: r for r in results if r["run"] == name}
        cells = [f"{rows[s]['nll']:.2f} ± {rows[s]['nll_stderr']:.2f}" if s in rows else "—" for s in seeds]
        done = [rows[s] for s in seeds if s in rows]
        means = [
            f"{sum(r[key] for r in done) / len(done):.{digits}f}" if done else "—"
            for key, digits in (("nll", 2), ("elbo", 2), ("seconds", 0))
        ]
        body.append([name, *cells, *means])
    return "\n".join(markdown(columns, body))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="binarized_mnist.npz (optionally binarized-mnist:FILE)")
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS), metavar="NAME")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument(
        "--epochs", type=float, default=3.0, help="may be fractional: round(epochs * batches per epoch) steps"
    )
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--test-images", type=int, default=1000, metavar="N")
    p.add_argument("--test-order", choices=("shuffled", "first"), default="shuffled")
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--out", type=Path, help="JSON file of results, reused by a later invocation with the same settings")
    args = p.parse_args(argv)
    keep_freed_memory()
    command = shown_command(argv)
    print(f"command: {command}", flush=True)

    path = Path(args.data.removeprefix("binarized-mnist:"))
    data = load_binarized_mnist(path)
    train, test = data.splits["train"].images, data.splits["test"].images
    if args.test_order == "shuffled":
        test = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))]
    x_test = test[: args.test_images]
    per_epoch = math.ceil(len(train) / args.batch_size)
    steps = round(args.epochs * per_epoch)
    settings = {
        "data_sha256": file_digest(path),
        "steps": steps,
        "batch_size": args.batch_size,
        "test_images": len(x_test),
        "test_order": args.test_order,
        "k": args.k,
    }
    print(
        f"{len(train)} training images, {steps} steps of {args.batch_size} ({steps / per_epoch:g} epochs); "
        f"{len(x_test)} test images ({args.test_order}), k = {args.k}; CPU threads: {torch.get_num_threads()}",
        flush=True,
    )
    results = load_results(args.out)
    started = time.perf_counter()
    for seed in args.seeds:
        nets = Networks.build(seed, train.mean(0))
        initial, first = {}, {}
        for name in args.runs:
            run = RUNS[name]
            initial[name] = initial_elbo(nets, run, x_test, seed)
            done = [
                r
                for r in results
                if (r["run"], r["seed"], r["settings"], r["run_settings"]) == (name, seed, settings, asdict(run))
            ]
            if done:
                first[name] = done[0]["first_loss"]
                print(f"seed {seed} {name}: kept from {args.out}: NLL {done[0]['nll']:.2f}", flush=True)
                continue
            torch.manual_seed(1_000 + seed)  # the reparameterisation noise: the same draws for every run
            t0 = time.perf_counter()
            posterior, logits, losses = TRAINERS[run.loop](nets, run, batches(train, args.batch_size, steps, seed))
            seconds = time.perf_counter() - t0
            row = {"run": name, "seed": seed, "settings": settings, "run_settings": asdict(run)}
            row.update(evaluate(posterior, logits, x_test, args.k, seed))
            first[name] = losses[0] if losses else math.nan
            tail = losses[-min(len(losses), per_epoch) :]
            row.update(
                initial_elbo=initial[name],
                first_loss=first[name],
                train_loss_last_epoch=sum(tail) / len(tail) if tail else math.nan,
                seconds=round(seconds, 1),
            )
            results = [r for r in results if not (r["run"] == name and r["seed"] == seed)] + [row]
            save_results(args.out, results)
            print(
                f"seed {seed} {name}: NLL {row['nll']:.2f} ± {row['nll_stderr']:.2f}, test ELBO {row['elbo']:.2f}, "
                f"train loss (last epoch) {row['train_loss_last_epoch']:.2f}, {seconds:.0f} s",
                flush=True,
            )
        print(f"seed {seed}: initial test ELBO per run (equal within a sigma map: same weights, same evaluator draws):")
        for name in args.runs:
            print(f"  {name:22s} {RUNS[name].scale:8s} {initial[name]:.4f}")
        print(f"seed {seed}: first step's training loss per datapoint (equal within an estimator and sigma map):")
        for name in args.runs:
            print(f"  {name:22s} {RUNS[name].scale:8s} KL {RUNS[name].kl:8s} {first[name]:.4f}")
    wall = time.perf_counter() - started
    current = [r for r in results if r["settings"] == settings and r["seed"] in args.seeds]
    print()
    print(f"Command: `{command}` ({wall / 60:.1f} min wall time on {torch.get_num_threads()} CPU threads)")
    print()
    print(table(current, args.runs, args.seeds))
    print()
    print(
        f"NLL = -L_{args.k} (± one standard error over images), test ELBO = mean log w over {ELBO_DRAWS} draws, "
        f"on {len(x_test)} test images; {steps} steps of batch {args.batch_size}; train s = training seconds."
    )
    print()
    for name in args.runs:
        print(f"- `{name}`: {RUNS[name].description}")


if __name__ == "__main__":
    main()
