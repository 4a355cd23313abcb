"""Training: SVI steps with a progress bar, per-epoch metrics, atomic checkpoints, resume, figures.

A run is reproducible from its seed: the seed fixes the initial weights, the data's per-epoch
randomness (shuffling, dynamic binarisation, stroke augmentation: all drawn from a data generator
whose state is saved at the start of each epoch) and the Monte Carlo draws (torch's global
generator, saved in every checkpoint). An interrupted run (Ctrl-C, SIGTERM) saves a checkpoint at
the batch it reached; ``resume`` replays the epoch from the saved generator state, skips the
finished batches and continues, so an interrupted and resumed run ends with the same weights as
one that was never stopped.

Schedules (per optimiser step s, or per epoch e):

- learning rate ``iwae`` (Burda et al.): stage i lasts 3^(i-1) epochs at lr 10^(-(i-1)/7);
  ``sketch`` (Ha & Eck): lr_s = (lr - min_lr) decay^s + min_lr.
- KL weight (sketch-rnn's annealing): w_s = w - (w - w_start) rate^s.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

import pvae
from pvae import render, runs
from pvae.bounds import elbo_terms
from pvae.data import absolute_spec, class_count, load_dataset
from pvae.errors import UserError
from pvae.objectives import OBJECTIVES, KLControl, make_objective
from pvae.svi import SVI, make_optimizer

METRIC_FIELDS = (
    "epoch",
    "step",
    "train_loss",
    "test_elbo",
    "test_recon",
    "test_kl",
    "test_L_R",
    "test_L_KL",
    "seconds",
)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json["train"]``).

    Defaults suit the image models; a model class may override them with ``train_defaults``
    (``TrainConfig.for_model``), as the sketch model does with sketch-rnn's settings.
    """

    model: str = "gaussian"
    guide: str = "mlp"
    objective: str = "elbo"
    particles: int = 1
    data: str = "digits"
    epochs: int = 15
    steps: int | None = None  # stop after this many optimiser steps in all (None: after the epochs)
    batch_size: int = 128
    seed: int = 0
    # networks (each model and guide takes the arguments it understands)
    latent_dim: int = 20
    hidden: list[int] = field(default_factory=lambda: [400])
    activation: str = "relu"
    likelihood: str = "bernoulli"
    obs_scale: float | None = None
    posterior_scale: str = "softplus"
    enc_hidden: int = 256
    dec_hidden: int = 512
    mixtures: int = 20
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    unconditional: bool = False
    mask_pen: bool = False
    rank: int = 2  # lowrank guide: columns of the covariance factor
    flows: int = 2  # iaf guide: IAF steps
    flow_hidden: int | None = None  # iaf guide: hidden units of each MADE (None: 2 Z, at least 16)
    # conditioning (ARCHITECTURE.md: the condition y is an argument of model and guide)
    conditional: bool = False  # class labels as y: p(x | z, y), q(z | x, y)
    learned_prior: bool = False  # p(z | y) with a mean and std per class instead of N(0, I)
    visible_quadrants: int = 1  # image completion: 1, 2 or 3 quadrants given
    baseline_epochs: int = 10  # image completion: epochs of the baseline network first
    # data
    train_limit: int | None = None
    max_seq_len: int = 250
    augment_scale: float = 0.0
    augment_drop: float = 0.0
    # optimiser
    lr: float = 1e-3
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    lr_schedule: str = "constant"
    lr_decay: float = 0.9999
    min_lr: float = 1e-5
    clip_value: float | None = None
    # KL controls
    kl_weight: float = 1.0
    kl_weight_units: str = "nats"
    kl_weight_start: float | None = None
    kl_anneal_rate: float | None = None
    kl_floor: float = 0.0
    kl_floor_mode: str = "total"

    @classmethod
    def for_model(cls, **given: Any) -> TrainConfig:
        """A config from ``given`` values over the model class's ``train_defaults`` over ours."""
        classes = runs.registry("model")
        name = given.get("model", cls.model)
        defaults = getattr(classes.get(name), "train_defaults", {})
        return cls(**{**defaults, **given})

    def check(self) -> None:
        """Raise ``UserError`` naming the first flag whose value cannot work."""
        if self.objective not in OBJECTIVES:
            raise UserError(f"--objective {self.objective}: unknown; choose one of {', '.join(OBJECTIVES)}")
        positive = {
            "--particles": self.particles,
            "--epochs": self.epochs,
            "--batch-size": self.batch_size,
            "--latent-dim": self.latent_dim,
            "--enc-hidden": self.enc_hidden,
            "--dec-hidden": self.dec_hidden,
            "--mixtures": self.mixtures,
            "--max-seq-len": self.max_seq_len,
            "--rank": self.rank,
            "--flows": self.flows,
        }
        if self.flow_hidden is not None:
            positive["--flow-hidden"] = self.flow_hidden
        if self.steps is not None:
            positive["--steps"] = self.steps
        if self.train_limit is not None:
            positive["--train-limit"] = self.train_limit
        if self.baseline_epochs < 0:
            raise UserError(f"--baseline-epochs {self.baseline_epochs}: must not be negative")
        if self.visible_quadrants not in (1, 2, 3):
            raise UserError(f"--visible-quadrants {self.visible_quadrants}: must be 1, 2 or 3")
        for flag, value in positive.items():
            if value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
        for flag, value in (("--lr", self.lr), ("--adam-eps", self.adam_eps), ("--min-lr", self.min_lr)):
            if not value > 0 or not math.isfinite(value):
                raise UserError(f"{flag} {value}: must be a positive number")
        if any(h < 1 for h in self.hidden):
            raise UserError(f"--hidden {' '.join(map(str, self.hidden))}: layer sizes must be at least 1")
        if self.obs_scale is not None and not self.obs_scale > 0:
            raise UserError(f"--obs-scale {self.obs_scale}: must be positive")
        if self.clip_value is not None and not self.clip_value > 0:
            raise UserError(f"--clip-value {self.clip_value}: must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"--lr-schedule {self.lr_schedule}: unknown; choose one of {', '.join(LR_SCHEDULES)}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise UserError(f"--adam-betas {' '.join(map(str, self.adam_betas))}: give two numbers in [0, 1)")
        for flag, value in (("--lr-decay", self.lr_decay), ("--kl-anneal-rate", self.kl_anneal_rate)):
            if value is not None and not 0 < value <= 1:
                raise UserError(f"{flag} {value}: must be in (0, 1]")
        for flag, value in (("--augment-scale", self.augment_scale), ("--augment-drop", self.augment_drop)):
            if not 0 <= value < 1:
                raise UserError(f"{flag} {value}: must be in [0, 1)")
        if not 0 <= self.recurrent_dropout < 1:
            raise UserError(f"--recurrent-dropout {self.recurrent_dropout}: must be in [0, 1)")
        if self.kl_weight < 0 or (self.kl_weight_start is not None and self.kl_weight_start < 0):
            raise UserError("--kl-weight and --kl-weight-start must not be negative")
        if self.kl_floor < 0:
            raise UserError(f"--kl-floor {self.kl_floor}: must not be negative")
        if self.kl_floor_mode not in ("total", "per-dim"):
            raise UserError(f"--kl-floor-mode {self.kl_floor_mode}: choose total or per-dim")
        if self.kl_weight_units not in ("nats", "sketch-rnn"):
            raise UserError(f"--kl-weight-units {self.kl_weight_units}: choose nats or sketch-rnn")
        self._check_guide()

    def _check_guide(self) -> None:
        """What the guide must support for the objective and KL controls (``guides.amortised``:
        ``analytic_kl``, ``factorised``); unknown guide names are reported when the guide is built."""
        guide = runs.registry("guide").get(self.guide)
        if guide is None:
            return
        if self.objective == "meanfield" and not getattr(guide, "analytic_kl", True):
            others = ", ".join(o for o in OBJECTIVES if o != "meanfield")
            raise UserError(
                f"--objective meanfield needs KL(q || p) in closed form, and --guide {self.guide} has none; "
                f"choose another --objective ({others})"
            )
        if self.kl_floor > 0 and self.kl_floor_mode == "per-dim" and not getattr(guide, "factorised", True):
            raise UserError(
                f"--kl-floor-mode per-dim (free bits) needs a factorised guide, and --guide {self.guide} is not; "
                "use --kl-floor-mode total"
            )


def iwae_lr_factor(epoch: int, step: int = 0, config: TrainConfig | None = None) -> float:
    """Burda et al.'s schedule: stage i = 1, 2, ... lasts 3^(i-1) epochs at lr * 10^(-(i-1)/7)
    (eight stages, 3280 epochs, in the paper); ``epoch`` counts from 0."""
    stage, end = 1, 1
    while epoch >= end:
        stage += 1
        end += 3 ** (stage - 1)
    return 10 ** (-(stage - 1) / 7)


def sketch_lr(config: TrainConfig, step: int) -> float:
    """sketch-rnn's decay: (lr - min_lr) * decay^step + min_lr."""
    return (config.lr - config.min_lr) * config.lr_decay**step + config.min_lr


LR_SCHEDULES: dict[str, Callable[[TrainConfig, int, int], float]] = {
    "constant": lambda config, epoch, step: config.lr,
    "iwae": lambda config, epoch, step: config.lr * iwae_lr_factor(epoch),
    "sketch": lambda config, epoch, step: sketch_lr(config, step),
}


def kl_weight(config: TrainConfig, step: int) -> float:
    """sketch-rnn's annealing w - (w - w_start) rate^step; constant w without a rate."""
    if config.kl_anneal_rate is None or config.kl_weight_start is None:
        return config.kl_weight
    return config.kl_weight - (config.kl_weight - config.kl_weight_start) * config.kl_anneal_rate**step


def _rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _read_metrics(path: Path, upto_epoch: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["epoch"]) <= upto_epoch]


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class Position:
    """Where training stands: saved in every checkpoint, so a run resumes at the same batch."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch
    step: int = 0  # optimiser steps in all
    loss_sum: float = 0.0  # sum of per-datapoint losses over the current epoch
    count: int = 0  # datapoints seen in the current epoch


class Interrupted(Exception):
    """Training stopped by the user; a checkpoint at the reached batch was saved."""


class Trainer:
    """Builds data, model, guide, objective and optimiser for one run folder and trains them.

    :param config: the run's configuration.
    :param out: the run folder (created if needed).
    :param device: torch device for model, guide and batches.
    :param progress: show a tqdm progress bar and a line per epoch.
    :param log: where the per-epoch lines go (``tqdm.write`` to stderr by default).
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path,
        device: str = "cpu",
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        config.check()
        config.data = absolute_spec(config.data)
        self.config, self.out, self.device, self.progress = config, Path(out), torch.device(device), progress
        self.log = log or (lambda line: tqdm.write(line, file=sys.stderr))
        scale = self._saved_scale()
        self.data = load_dataset(config.data, max_seq_len=config.max_seq_len, scale=scale)
        pyro.set_rng_seed(config.seed)
        pyro.clear_param_store()
        candidates = {
            **self.data.model_kwargs(),
            **{
                k: getattr(config, k)
                for k in ("latent_dim", "activation", "likelihood", "obs_scale", "enc_hidden", "dec_hidden")
                + ("mixtures", "layer_norm", "recurrent_dropout", "unconditional", "mask_pen", "learned_prior")
                + ("visible_quadrants", "baseline_epochs", "rank", "flows", "flow_hidden")
            },
            "hidden": list(config.hidden),
            "scale": config.posterior_scale,
            "num_classes": self._num_classes(),
        }
        self.model_spec = runs.make_spec("model", config.model, candidates)
        self.model = runs.build("model", **self.model_spec).to(self.device)
        self.guide_spec, self.guide = None, None
        if self.model.latent_dim > 0:
            self.guide_spec = runs.make_spec("guide", config.guide, candidates)
            self.guide = runs.build("guide", **self.guide_spec).to(self.device)
            if self.guide.latent_dim != self.model.latent_dim:
                raise UserError(
                    f"--guide {config.guide} gives latent_dim {self.guide.latent_dim}, "
                    f"--model {config.model} needs {self.model.latent_dim}"
                )
        # Bernoulli pixels must be 0 or 1: grey training images are binarised afresh every epoch
        # and the test images once, with a fixed seed, so test numbers compare across epochs.
        self.binarize = getattr(self.model, "binary", False) and not self.data.binary
        train = self.data.split("train").head(config.train_limit)
        if self.data.kind == "image":
            self.train_split = dataclasses.replace(train, dynamic_binarization=self.binarize)
        else:
            self.train_split = train.with_augmentation(config.augment_scale, config.augment_drop)
        self.test = runs.load_split(self.run_config(), "test", self.data)
        self.kl = self._kl_control()
        objective = make_objective(config.objective, config.particles, kl=self.kl)
        params = list(self.model.parameters()) + ([] if self.guide is None else list(self.guide.parameters()))
        optimizer = make_optimizer(params, config.lr, betas=tuple(config.adam_betas), eps=config.adam_eps)
        self.svi = SVI(self.model, self.guide, objective, optimizer, clip_value=config.clip_value)
        self.data_generator = torch.Generator().manual_seed(config.seed)

    def _num_classes(self) -> int:
        """C for a class-conditional run (``--conditional``), else 0."""
        if not self.config.conditional:
            return 0
        count = class_count(self.data)
        if count < 2:
            raise UserError(
                f"--data {self.config.data}: its train split has no class labels, and --model "
                f"{self.config.model} is class-conditional (binarized-mnist has labels only for its test split: "
                "train on digits or mnist:DIR)"
            )
        return count

    def _saved_scale(self) -> float | None:
        """The stroke normaliser of a run being resumed (a new run computes it from its data)."""
        path = self.out / runs.CONFIG
        return runs.load_config(self.out)["data"].get("scale") if path.is_file() else None

    def _kl_control(self) -> KLControl | None:
        cfg = self.config
        plain = cfg.kl_weight == 1.0 and cfg.kl_floor == 0 and cfg.kl_anneal_rate is None
        if self.model.latent_dim == 0 or (plain and cfg.kl_weight_units == "nats"):
            return None
        return KLControl(weight=self._kl_weight(0), floor=cfg.kl_floor, per_dim=cfg.kl_floor_mode == "per-dim")

    def _kl_weight(self, step: int) -> float:
        """The weight on the KL in nats per datapoint; sketch-rnn's units weigh L_KL = KL / Z
        against L_R = -log p(x|z) / T, which is a weight of w T / Z on the KL in nats."""
        w = kl_weight(self.config, step)
        if self.config.kl_weight_units == "sketch-rnn":
            w *= self.data.rows / self.model.latent_dim
        return w

    def run_config(self) -> dict[str, Any]:
        data = {"spec": self.config.data, "name": self.data.name, "kind": self.data.kind}
        if self.data.kind == "image":
            data.update(shape=list(self.data.shape), binarize="dynamic" if self.binarize else "none")
        else:
            data.update(scale=self.data.scale, rows=self.data.rows)
        return {
            "pvae_version": pvae.__version__,
            "train": dataclasses.asdict(self.config),
            "data": data,
            "model": self.model_spec,
            "guide": self.guide_spec,
        }

    def _checkpoint(self, at: Position, epoch_state: torch.Tensor) -> None:
        runs.save_checkpoint(
            self.out,
            {
                "model": self.model.state_dict(),
                "guide": None if self.guide is None else self.guide.state_dict(),
                "optimizer": self.svi.optimizer.state_dict(),
                "position": dataclasses.asdict(at),
                "data_generator": epoch_state,  # data generator state at the start of the epoch
                "rng": _rng_state(),
            },
        )

    def _train_epoch(self, at: Position, bar: tqdm) -> None:
        """The rest of epoch ``at.epoch``, from batch ``at.batch`` on; updates ``at`` as it goes."""
        cfg = self.config
        schedule = LR_SCHEDULES[cfg.lr_schedule]
        for x, labels in self.train_split.batches(cfg.batch_size, self.data_generator, skip=at.batch):
            if cfg.steps is not None and at.step >= cfg.steps:
                return
            for group in self.svi.optimizer.param_groups:
                group["lr"] = schedule(cfg, at.epoch, at.step)
            if self.kl is not None:
                self.kl.weight = self._kl_weight(at.step)
            x = x.to(self.device)
            loss = self.svi.step(x, self.model.condition(x, None if labels is None else labels.to(self.device)))
            if not math.isfinite(loss):
                raise UserError(
                    f"the {cfg.objective} loss became {loss} at epoch {at.epoch + 1}, step {at.step + 1}; "
                    "try a smaller --lr"
                )
            at.loss_sum += loss * x.shape[0]
            at.count += x.shape[0]
            at.batch += 1
            at.step += 1
            bar.update()
            if at.batch % 10 == 0:
                bar.set_postfix_str(f"loss {at.loss_sum / at.count:.2f}", refresh=False)

    def evaluate(self) -> dict[str, float]:
        """Test ELBO, reconstruction and KL in nats per datapoint (and sketch-rnn's L_R, L_KL)."""
        x = self.test.tensor()
        terms = elbo_terms(self.model, self.guide, x, self.model.condition(x, self.test.labels))
        if self.data.kind == "strokes":
            terms["L_R"] = -terms["recon"] / self.data.rows
            terms["L_KL"] = terms["kl"] / max(self.model.latent_dim, 1)
        return terms

    def train(self, resume: bool = False) -> Path:
        """Train up to ``config.epochs`` epochs (or ``config.steps`` steps), then draw the figures."""
        cfg, out = self.config, self.out
        has_checkpoint = (out / runs.CHECKPOINT).is_file()
        if resume and not has_checkpoint:
            raise UserError(f"--resume: {out} holds no {runs.CHECKPOINT} to resume from")
        if not resume and has_checkpoint:
            raise UserError(f"--out {out}: already holds a run; pass --resume to continue it, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        at = Position()
        if resume:
            state = runs.load_checkpoint(out, self.device)
            self.model.load_state_dict(state["model"])
            if self.guide is not None:
                self.guide.load_state_dict(state["guide"])
            self.svi.optimizer.load_state_dict(state["optimizer"])
            at = Position(**state["position"])
            self.data_generator.set_state(state["data_generator"])
            _set_rng_state(state["rng"])
            self.svi.validated = True
        else:
            init = getattr(self.model, "init_output_bias", None)
            if init is not None and self.data.kind == "image":
                init(self.train_split.images.mean(0))
            pretrain = getattr(self.model, "pretrain", None)
            if pretrain is not None:
                generator = torch.Generator().manual_seed(cfg.seed + 2)
                pretrain(lambda: self.train_split.batches(cfg.batch_size, generator), self.log)
        runs.save_config(out, self.run_config())
        self.log(f"run folder: {out}")
        metrics = _read_metrics(out / runs.METRICS, at.epoch)
        _write_metrics(out / runs.METRICS, metrics)

        n_batches = math.ceil(len(self.train_split) / cfg.batch_size)
        budget_left = lambda: cfg.steps is None or at.step < cfg.steps  # noqa: E731
        if at.epoch >= cfg.epochs or not budget_left():
            self.log(f"{out}: the run's budget is spent; pass a larger --epochs or --steps to train further")
        while at.epoch < cfg.epochs and budget_left():
            epoch_state = self.data_generator.get_state()
            started = time.perf_counter()
            bar = tqdm(
                total=n_batches,
                initial=at.batch,
                desc=f"epoch {at.epoch + 1}/{cfg.epochs}",
                disable=not self.progress,
                leave=False,
                dynamic_ncols=True,
            )
            try:
                self._train_epoch(at, bar)
                bar.close()
                test = self.evaluate()
            except KeyboardInterrupt:
                bar.close()
                self._checkpoint(at, epoch_state)
                raise Interrupted(
                    f"interrupted at epoch {at.epoch + 1}, batch {at.batch}/{n_batches}; checkpoint saved. "
                    f"Continue with: pvae train --resume --out {out}"
                ) from None
            seconds = time.perf_counter() - started
            row = {"epoch": at.epoch + 1, "step": at.step, "train_loss": f"{at.loss_sum / max(at.count, 1):.4f}"}
            row.update({f"test_{k}": f"{v:.4f}" for k, v in test.items()})
            row["seconds"] = f"{seconds:.2f}"
            if at.batch < n_batches:  # stopped by --steps inside the epoch: resume there
                self._checkpoint(at, epoch_state)
            else:
                at = Position(epoch=at.epoch + 1, step=at.step)
                self._checkpoint(at, self.data_generator.get_state())
            metrics.append(row)
            _write_metrics(out / runs.METRICS, metrics)
            extra = f"  L_R {test['L_R']:.3f}  L_KL {test['L_KL']:.3f}" if "L_R" in test else ""
            self.log(
                f"epoch {row['epoch']}/{cfg.epochs}  step {at.step}  train loss {row['train_loss']}  "
                f"test ELBO {test['elbo']:.2f} nats (KL {test['kl']:.2f}){extra}  ({seconds:.1f} s)"
            )
        self.figures(metrics)
        return out

    def figures(self, metrics: list[dict[str, Any]]) -> None:
        """The loss curve, and the data's own figures (images or sketches) of the trained pair."""
        folder = self.out / runs.FIGURES
        folder.mkdir(exist_ok=True)
        if metrics:
            epochs = [int(r["epoch"]) for r in metrics]
            render.loss_curves(
                epochs,
                {
                    f"train loss ({self.config.objective})": [float(r["train_loss"]) for r in metrics],
                    "test -ELBO": [-float(r["test_elbo"]) for r in metrics],
                },
                folder / "loss.png",
                ylabel="nats per datapoint",
            )
        if self.data.kind == "image":
            from pvae.inspect import training_figures

            training_figures(folder, self.model, self.guide, self.test, self.data.shape, seed=self.config.seed)
        else:
            from pvae.sketching import training_figures as sketch_figures

            sketch_figures(self.out, self.model, self.guide, self.test, seed=self.config.seed)


def train(
    config: TrainConfig, out: str | Path, resume: bool = False, device: str = "cpu", progress: bool = True
) -> Path:
    """Train a run (see ``Trainer``); returns its folder."""
    return Trainer(config, out, device=device, progress=progress).train(resume=resume)
