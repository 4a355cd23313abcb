"""Training: the ``Trainer`` builds and checks a combination of data, model, guide and objective,
then runs SVI steps with a progress bar, per-epoch evaluation, checkpoints and resume.

A run is reproducible from its seed: the seed fixes the initial weights, the data's per-epoch
randomness (shuffling, dynamic binarisation, stroke augmentation: all drawn from a data generator
whose state is saved at the start of each epoch) and the Monte Carlo draws (torch's global
generator, saved in every checkpoint). What a checkpoint holds and how a run resumes is
``pvae.checkpoints``; the rows, lines and figures of each epoch are ``pvae.reporting``; the
schedules are the optimiser's (``pvae.svi.LR_SCHEDULES``) and the KL controls'
(``pvae.objectives.kl.kl_weight``). A resumed run keeps the schedule of the steps it was planned
for when it started (kept in the checkpoint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

import pvae
from guides import GUIDES
from models import MODELS
from pvae import reporting, runs
from pvae.bounds import elbo_sums
from pvae.checkpoints import (
    Interrupted,
    Position,
    StopRequests,
    checkpoint_state,
    restore,
    restore_rng,
    rng_state,
)
from pvae.data.splits import class_count
from pvae.distributed import Ranks
from pvae.errors import UserError
from pvae.kinds.base import KINDS, absolute_spec, kind_of_spec
from pvae.objectives import OBJECTIVES, KLControl, Objective, make_objective
from pvae.objectives.kl import annealing, kl_weight
from pvae.options import CONSTRUCTOR_SCOPES, TrainConfig, all_options, unused_options
from pvae.report import REPORT, write_report
from pvae.svi import LR_SCHEDULES, SVI, NonFinite, make_optimizer


class Diverged(UserError):
    """The loss or a gradient became NaN or infinite and no skips were left."""


@contextlib.contextmanager
def _flushed_denormals() -> Iterator[None]:
    """Denormal floats read as zero while training, and again not after (torch's default).

    Gradients that fade back through a long LSTM turn denormal, and CPUs compute with those several
    times slower (a melody step took 0.85 s instead of 0.17 s); numbers under 1.2e-38 become zero."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class Trainer:
    """Builds data, model, guide, objective and optimiser for one run folder and trains them.

    Every combination of registered model, guide, objective and data kind either builds or
    raises ``UserError`` with one line (``docs/architecture.md``, "Capabilities"): the model reads
    the data's kind, the guide reads it too, the objective can serve the guide, and no option
    set away from its default goes unread.

    :param config: the run's configuration.
    :param out: the run folder (created if needed).
    :param device: torch device for model, guide and batches.
    :param progress: show a tqdm progress bar and a line per epoch.
    :param log: where the per-epoch lines go (``tqdm.write`` to stderr by default).
    :param ranks: this process among data-parallel ones (``pvae.distributed.start``); rank 0 alone
        writes the run folder and logs.
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path,
        device: str = "cpu",
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        ranks: Ranks = Ranks(),
    ) -> None:
        config.check()
        if config.tensorboard:  # before any data is read: the package is missing, not the run
            reporting.require_tensorboard()
        config.data = absolute_spec(config.data)
        self.config, self.out, self.ranks = config, Path(out), ranks
        self._tensorboard: reporting.TensorBoard | None = None
        self.progress = progress and ranks.main
        self.device = _device(device)
        self.log = (log or (lambda line: tqdm.write(line, file=sys.stderr))) if ranks.main else _silent
        self.kind = kind_of_spec(config.data)
        model_cls = MODELS[config.model]
        if model_cls.data_kind != self.kind.name:
            raise UserError(
                f"--model {config.model} reads {model_cls.data_kind} data ({_specs(model_cls.data_kind)}); "
                f"--data {config.data} is {self.kind.name} data"
            )
        self.data = self.kind.load(config.data, config.asdict(), saved=self._saved_data())
        pyro.set_rng_seed(config.seed)
        pyro.clear_param_store()
        arguments = {
            **self.kind.model_kwargs(self.data),
            **{o.argument: getattr(config, o.name) for o in all_options().values() if o.scope in CONSTRUCTOR_SCOPES},
            "num_classes": self._num_classes(),  # --conditional: C, from the data's labels
        }
        self.model_spec = runs.make_spec("model", config.model, arguments)
        self.model = runs.build("model", **self.model_spec).to(self.device)
        self.guide_spec, self.guide = None, None
        self._check_combination(model_cls)
        if self.model.latent_dim > 0:
            if not self.model.guide_reads_labels:
                arguments["num_classes"] = 0
            self.guide_spec = runs.make_spec("guide", config.guide, arguments)
            self.guide = runs.build("guide", **self.guide_spec).to(self.device)
            if self.guide.latent_dim != self.model.latent_dim:
                raise UserError(
                    f"--guide {config.guide} gives latent_dim {self.guide.latent_dim}, "
                    f"--model {config.model} needs {self.model.latent_dim}"
                )
            if config.kl_floor > 0 and config.kl_floor_mode == "per-dim" and not self.guide.factorised:
                raise UserError(
                    f"--kl-floor-mode per-dim (free bits) needs a factorised guide, and --guide {config.guide} is "
                    "not; use --kl-floor-mode total"
                )
        self.run = self.run_config()
        self.train_split = self.kind.training_split(self.data, self.run)
        self.test = self.kind.evaluation_split(self.data, "test", self.run)
        for name, split in (("train", self.train_split), ("test", self.test)):
            if not len(split):
                raise UserError(f"--data {config.data}: the {name} split is empty")
        self._planned = self._planned_steps()  # a resumed run takes its checkpoint's instead
        self.kl = self._kl_control()
        options = {o.argument: getattr(config, o.name) for o in all_options().values() if o.scope == "objective"}
        objective = make_objective(
            config.objective,
            config.particles,
            kl=self.kl,
            latent_dim=self.model.latent_dim,
            num_classes=self.model.num_classes,
            **self.kind.model_kwargs(self.data),  # data_dim for a discriminator of images
            **options,
        )
        if (why := objective.refusal(self.model)) is not None:
            raise UserError(why)
        params = list(self.model.parameters()) + ([] if self.guide is None else list(self.guide.parameters()))
        groups = [{"params": params, "lr_ratio": 1.0}]
        extra = [p for network in objective.networks() for p in network.parameters()]
        if extra:  # a discriminator, at its own learning rate
            groups.append({"params": extra, "lr_ratio": objective.lr_ratio})
        optimizer = make_optimizer(groups, config.lr, betas=tuple(config.adam_betas), eps=config.adam_eps)
        self._check_jit(objective)
        self.svi = SVI(
            self.model, self.guide, objective, optimizer, clip_value=config.clip_value, ranks=ranks, jit=config.jit
        )
        self.data_generator = torch.Generator().manual_seed(config.seed)

    def _check_combination(self, model_cls: type) -> None:
        """Refuse, in one line, a guide or objective that cannot serve this model and data, and
        any option set away from its default that nothing here reads."""
        cfg = self.config
        has_latent = self.model.latent_dim > 0
        guide_cls = GUIDES.get(cfg.guide) if has_latent else None
        objective_cls = OBJECTIVES[cfg.objective]
        if not objective_cls.trains_prior and self.model.prior_has_parameters:
            raise UserError(
                f"--objective {cfg.objective} samples p(z) without training it, and --model {cfg.model} "
                "learns its prior; choose another --objective or a fixed prior"
            )
        if objective_cls.data_kinds is not None and self.kind.name not in objective_cls.data_kinds:
            raise UserError(
                f"--objective {cfg.objective} reads {' or '.join(objective_cls.data_kinds)} data; --data {cfg.data} is "
                f"{self.kind.name} data"
            )
        if has_latent:
            if guide_cls is None:
                raise UserError(f"--guide {cfg.guide}: unknown; choose one of {', '.join(GUIDES)}")
            if self.kind.name not in guide_cls.data_kinds:
                readable = [k for k, g in GUIDES.items() if self.kind.name in g.data_kinds]
                raise UserError(
                    f"--guide {cfg.guide} reads {' or '.join(guide_cls.data_kinds)} data; --data {cfg.data} is "
                    f"{self.kind.name} data (guides for it: {', '.join(readable)})"
                )
            if objective_cls.requires_density and not guide_cls.density:
                others = [name for name, o in OBJECTIVES.items() if not o.requires_density]
                raise UserError(
                    f"--objective {cfg.objective} needs a guide with a density, and --guide {cfg.guide} is a point "
                    f"estimate; choose --objective {' or '.join(others)}"
                )
        model_args = runs.accepted_arguments(model_cls)
        guide_args = runs.accepted_arguments(guide_cls) if guide_cls is not None else set()
        objective_args = runs.accepted_arguments(objective_cls)
        pair = f"--model {cfg.model}" + (f" with --guide {cfg.guide}" if has_latent else "")
        no_latent = f"--model {cfg.model} (no latent code, so no guide)"
        no_kl = no_latent if not has_latent else f"--objective {cfg.objective} (no KL term)"
        readers = {
            "model": (model_args.__contains__, f"--model {cfg.model}"),
            "guide": (guide_args.__contains__, f"--guide {cfg.guide}" if has_latent else no_latent),
            "networks": (lambda a: a in model_args or a in guide_args, pair),
            "data": ({o.name for o in self.kind.options}.__contains__, f"{self.kind.name} data (--data {cfg.data})"),
            "latent": (lambda name: has_latent and objective_cls.uses_kl, no_kl),
            "objective": (objective_args.__contains__, f"--objective {cfg.objective}"),
        }
        unused = unused_options(cfg, readers)
        if unused:
            raise UserError(unused[0])

    def _check_jit(self, objective: Objective) -> None:
        """Refuse ``--jit`` in one line where a trace could freeze a value that must change."""
        cfg = self.config
        if not cfg.jit:
            return
        if self.ranks.parallel:
            raise UserError("--jit traces the loss in one process; train without --jit under torchrun")
        parts = [(f"--model {cfg.model}", self.model), (f"--guide {cfg.guide}", self.guide)]
        for flag, part in [*parts, (f"--objective {cfg.objective}", objective)]:
            if part is not None and not part.traceable:
                raise UserError(
                    f"--jit: {flag} is not traceable (its Python reads the data, follows a schedule, or "
                    "calls what a trace does not record); train without --jit"
                )

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

    def _saved_data(self) -> dict[str, Any] | None:
        """The data description of a run with a checkpoint (e.g. its stroke normaliser), or ``None``."""
        return runs.load_config(self.out)["data"] if runs.has_checkpoint(self.out) else None

    def _kl_control(self) -> KLControl | None:
        cfg = self.config
        plain = cfg.kl_weight == 1.0 and cfg.kl_floor == 0 and not annealing(cfg)
        if (
            self.model.latent_dim == 0
            or (plain and cfg.kl_weight_units == "nats")
            or not OBJECTIVES[cfg.objective].uses_kl
        ):
            return None
        return KLControl(weight=self._kl_weight(0), floor=cfg.kl_floor, per_dim=cfg.kl_floor_mode == "per-dim")

    def _kl_weight(self, step: int) -> float:
        """The weight on the KL in nats per datapoint; sketch-rnn's units weigh L_KL = KL / Z
        against L_R = -log p(x|z) / T, which is a weight of w T / Z on the KL in nats."""
        w = kl_weight(self.config, step, self._planned)
        if self.config.kl_weight_units == "sketch-rnn":
            w *= self.kind.steps(self.run) / self.model.latent_dim
        return w

    def run_config(self) -> dict[str, Any]:
        """``config.json``: everything that rebuilds the run's data, model and guide."""
        data = {"spec": self.config.data, "name": self.data.name, "kind": self.kind.name}
        return {
            "pvae_version": pvae.__version__,
            "train": self.config.asdict(),
            "data": {**data, **self.kind.describe(self.data, self.model)},
            "model": self.model_spec,
            "guide": self.guide_spec,
        }

    def _checkpoint(self, at: Position, epoch_state: torch.Tensor) -> None:
        """Save the run at ``at`` (rank 0 writes; every rank calls this at the same step, since the
        random states of all ranks are kept)."""
        rng = self.ranks.gather(rng_state())
        if self.ranks.main:
            at = dataclasses.replace(at, rows=len(self._metrics))
            svi = self.svi
            state = checkpoint_state(
                self.model, self.guide, svi.module.networks, svi.optimizer, at, epoch_state, rng, self._planned
            )
            runs.save_checkpoint(self.out, state)
        self._saved, self._saved_at = at.step, time.monotonic()

    def _train_epoch(self, at: Position, bar: tqdm, epoch_state: torch.Tensor, stop: StopRequests) -> None:
        """The rest of epoch ``at.epoch``, from batch ``at.batch`` on; updates ``at`` as it goes.
        Returns early at the step limit or after the step in flight when a stop was requested."""
        cfg = self.config
        schedule = LR_SCHEDULES[cfg.lr_schedule]
        part = (self.ranks.rank, self.ranks.world)  # each rank reads its slice of every batch
        for x, labels in self.train_split.batches(cfg.batch_size, self.data_generator, at.batch, part):
            if (cfg.steps is not None and at.step >= cfg.steps) or self._stopping is not None:
                return
            for group in self.svi.optimizer.param_groups:
                group["lr"] = schedule(cfg, at.epoch, at.step) * group["lr_ratio"]
            if self.kl is not None:
                self.kl.weight = self._kl_weight(at.step)
            self.model.set_progress(at.step, self._planned)
            x = x.to(self.device)
            y = self.model.condition(x, None if labels is None else labels.to(self.device))
            total = min(cfg.batch_size, len(self.train_split) - at.batch * cfg.batch_size)  # over all ranks
            due = time.monotonic() - self._saved_at >= 60 * cfg.checkpoint_every
            try:  # the ranks share their stop request and clock with the step's gradients
                self.svi.step(x, y, total, (stop.signum is not None, due))
            except NonFinite as e:
                self._agree_to_stop(self.svi.flags[0], stop)
                if at.skipped >= cfg.skip_nonfinite:
                    self._checkpoint(at, epoch_state)  # the parameters are those of the last good step
                    raise Diverged(self._diverged(e, x, at)) from None
                at.skipped += 1
                at.batch += 1
                self.log(f"skipped step {at.step + 1}: {e} ({at.skipped} of --skip-nonfinite {cfg.skip_nonfinite})")
                continue
            stopping, due = self.svi.flags  # as every rank sees them: all stop or save after this step
            self._agree_to_stop(stopping, stop)
            self._watch(self.svi.loss_sum / total, at)
            at.loss_sum += self.svi.loss_sum
            at.count += total
            at.batch += 1
            at.step += 1
            if self._tensorboard is not None:
                self._tensorboard.step(at.step, self.svi.loss_sum / total, self.svi.optimizer.param_groups[0]["lr"])
            bar.update()
            if at.batch % 10 == 0:
                bar.set_postfix_str(f"loss {at.loss_sum / at.count:.2f}", refresh=False)
            if due:
                self._checkpoint(at, epoch_state)

    def _planned_steps(self) -> int:
        """The steps this run is planned for: ``--steps``, or ``--epochs`` of batches, whichever is fewer."""
        cfg = self.config
        per_epoch = math.ceil(len(self.train_split) / cfg.batch_size)
        limits = [n for n in (cfg.steps, None if cfg.epochs is None else cfg.epochs * per_epoch) if n is not None]
        return min(limits)

    def _agree_to_stop(self, requests: float, stop: StopRequests) -> None:
        """Stop after this step when any rank had a stop request (``requests`` > 0, summed over
        the ranks): every rank decides from the same number, never from its own signal alone."""
        if requests and self._stopping is None:
            self._stopping = stop.signum or signal.SIGTERM

    def _diverged(self, error: NonFinite, x: torch.Tensor, at: Position) -> str:
        """One line: where the loss or gradient stopped being finite, and the likely cause."""
        cfg = self.config
        if not torch.isfinite(x).all():
            cause = f"the batch holds NaN or inf values: check the data ({cfg.data})"
        else:
            cause = f"the learning rate may be too high (--lr {cfg.lr:g})"
        return (
            f"{error} at step {at.step + 1} (epoch {at.epoch + 1}, batch {at.batch + 1}): {cause}; the parameters of "
            f"step {at.step} are saved in {self.out / runs.CHECKPOINT} (--skip-nonfinite N skips such steps)"
        )

    def _watch(self, loss: float, at: Position) -> None:
        """Say once, in one line, when the loss explodes far above the best seen."""
        best = self._best
        if best is not None and not self._warned and loss > best + 100 * max(1.0, abs(best)):
            self._warned = True
            self.log(
                f"warning: the loss jumped to {loss:.4g} at step {at.step + 1}, from a best of {best:.4g}: "
                f"the learning rate may be too high (--lr {self.config.lr:g})"
            )
        self._best = loss if best is None else min(best, loss)

    def evaluate(self, stop: StopRequests | None = None) -> dict[str, float]:
        """Test ELBO, reconstruction and KL in nats per datapoint, and the data kind's own terms
        (sketch-rnn's L_R, L_KL for strokes); each rank evaluates its part, the sums are reduced
        (with the ranks' stop requests, when training)."""
        chunks = self.test.chunks(500, (self.ranks.rank, self.ranks.world))
        recon, kl, n = elbo_sums(self.model, self.guide, ((x, self.model.condition(x, y)) for x, y in chunks))
        requested = stop is not None and stop.signum is not None
        recon, kl, n, requests = self.ranks.sum(recon, kl, n, requested)
        if stop is not None:
            self._agree_to_stop(requests, stop)
        terms = {"elbo": (recon - kl) / n, "recon": recon / n, "kl": kl / n}
        return {**terms, **self.kind.report(terms, self.run, self.model)}

    def _limit_reached(self, at: Position) -> str | None:
        """Which limit ends the run at ``at`` (as a flag and value), or ``None`` to go on."""
        cfg = self.config
        if cfg.steps is not None and at.step >= cfg.steps:
            return f"--steps {cfg.steps}"
        if cfg.epochs is not None and at.epoch >= cfg.epochs:
            return f"--epochs {cfg.epochs}"
        return None

    def train(self, resume: bool = False) -> Path:
        """Train until ``config.epochs`` epochs or ``config.steps`` steps, whichever comes first,
        then draw the figures. A resumed run with nothing left to do changes no file."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out}: is a file, not a folder")
        if resume and not runs.has_checkpoint(out):
            raise UserError(f"--resume: {out} holds no {runs.CHECKPOINT} to resume from")
        if not resume and runs.has_checkpoint(out):
            raise UserError(f"--out {out}: already holds a run; pass --resume to continue it, or choose another --out")
        if self.ranks.main:
            out.mkdir(parents=True, exist_ok=True)
        with (
            runs.RunLock(out) if self.ranks.main else contextlib.nullcontext(),
            StopRequests() as stop,
            _flushed_denormals(),
        ):
            try:
                return self._train(resume, stop)
            finally:  # stopped, failed or done: what --tensorboard logged is on disk
                if self._tensorboard is not None:
                    self._tensorboard.close()
                    self._tensorboard = None

    def _train(self, resume: bool, stop: StopRequests) -> Path:
        cfg, out = self.config, self.out
        at = Position()
        self._best, self._warned = None, False
        if resume:  # rank 0 reads the checkpoint and sends it to the others
            state = runs.load_checkpoint(out, warn=self.log) if self.ranks.main else None
            state = self.ranks.broadcast(state)
            spent = self._limit_reached(Position(**state["position"]))
            if spent is not None:
                self.log(f"{out}: nothing to do: the run has reached {spent}; pass a larger --epochs or --steps")
                return out
            svi = self.svi
            at = restore(state, self.model, self.guide, svi.module.networks, svi.optimizer, self.data_generator)
            restore_rng(state["rng"], self.ranks.rank, self.ranks.world, cfg.seed, at.step)
            self._planned = state.get("planned_steps", self._planned)  # absent in checkpoints of older versions
            self.svi.validated = True
        else:
            self.kind.prepare_model(self.model, self.train_split)
            generator = torch.Generator().manual_seed(cfg.seed + 2)
            self.model.pretrain(lambda: self.train_split.batches(cfg.batch_size, generator), self.log)
            if self.ranks.parallel:  # every rank starts from rank 0's pretrained parts (a frozen renderer)
                self.model.load_state_dict(self.ranks.broadcast(self.model.state_dict()))
            if self.ranks.rank:  # Monte Carlo draws of their own; rank 0 draws as one process does
                torch.manual_seed(cfg.seed + self.ranks.rank)
        if self.ranks.main:
            runs.save_config(out, self.run)
        self.log(f"run folder: {out}" + (f" ({self.ranks.world} data-parallel ranks)" if self.ranks.parallel else ""))
        metrics = reporting.read_rows(out / runs.METRICS, at.step, at.rows)
        timing = reporting.read_rows(out / runs.TIMING, at.step, at.rows)
        self._metrics, self._stopping = metrics, None
        self._saved, self._saved_at = at.step, time.monotonic()
        if cfg.tensorboard and self.ranks.main:
            self._tensorboard = reporting.TensorBoard(out, purge_step=at.step + 1 if resume else None)

        n_batches = math.ceil(len(self.train_split) / cfg.batch_size)
        while (limit := self._limit_reached(at)) is None:
            epoch_state = self.data_generator.get_state()
            started = time.perf_counter()
            bar = tqdm(
                total=n_batches,
                initial=at.batch,
                desc=f"epoch {at.epoch + 1}" + ("" if cfg.epochs is None else f"/{cfg.epochs}"),
                disable=not self.progress,
                leave=False,
                dynamic_ncols=True,
            )
            try:
                self._train_epoch(at, bar, epoch_state, stop)
            except KeyboardInterrupt:  # a second signal: stop at once, keep the last checkpoint
                raise Interrupted(
                    f"stopped at once; the checkpoint of step {self._saved} is kept. "
                    f"Continue with: pvae train --resume --out {out}",
                    stop.signum or signal.SIGINT,
                ) from None
            finally:
                bar.close()
            if self._stopping is not None and at.batch < n_batches:
                self._checkpoint(at, epoch_state)
                raise Interrupted(
                    f"stopped at epoch {at.epoch + 1}, batch {at.batch}/{n_batches} (step {at.step}); checkpoint "
                    f"saved. Continue with: pvae train --resume --out {out}",
                    self._stopping,
                )
            test = self.evaluate(stop)
            seconds = time.perf_counter() - started
            row = reporting.epoch_row(at.epoch + 1, at.step, at.loss_sum / max(at.count, 1), test, at.skipped)
            metrics.append(row)
            if self._tensorboard is not None:
                self._tensorboard.epoch(row)
            timing.append({"epoch": row["epoch"], "step": at.step, "seconds": f"{seconds:.2f}"})
            # metrics first: a kill between the two leaves rows past the checkpoint's count, dropped on resume
            if self.ranks.main:
                reporting.write_rows(out / runs.METRICS, metrics, reporting.metric_fields(self.kind))
                reporting.write_rows(out / runs.TIMING, timing, list(reporting.TIMING_FIELDS))
            if at.batch < n_batches:  # stopped by --steps inside the epoch: resume there
                self._checkpoint(at, epoch_state)
            else:
                at = Position(epoch=at.epoch + 1, step=at.step, skipped=at.skipped)
                self._checkpoint(at, self.data_generator.get_state())
            density = self.guide is None or self.guide.density
            self.log(reporting.epoch_line(row, cfg.epochs, test, density, seconds))
            if self._stopping is not None:
                raise Interrupted(
                    f"stopped after epoch {row['epoch']} (step {at.step}); checkpoint saved. "
                    f"Continue with: pvae train --resume --out {out}",
                    self._stopping,
                )
        self.log(f"stopped at step {at.step} (epoch {at.epoch + (at.batch > 0)}): reached {limit}")
        if self.ranks.main:
            reporting.figures(out, metrics, self.kind, self.model, self.guide, self.test, self.run)
            if self._tensorboard is not None:
                self._tensorboard.figures(out / runs.FIGURES, at.step)
            try:  # the checkpoint is saved: a report that cannot be written is a warning, not a lost run
                write_report(out)
            except Exception as e:
                self.log(f"warning: {out / REPORT} not written ({type(e).__name__}: {e}); pvae report {out} retries")
        return out


def _silent(line: str) -> None:
    """The log of ranks other than 0."""


def _specs(kind: str) -> str:
    return ", ".join(KINDS[kind].schemes.values())


def _device(name: str) -> torch.device:
    """The torch device called ``name``, if this machine has it."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UserError(f"--device {name}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: this torch has no CUDA device (torch {torch.__version__})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available here")
    return device


def train(
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    ranks: Ranks = Ranks(),
) -> Path:
    """Train a run (see ``Trainer``); returns its folder."""
    return Trainer(config, out, device=device, progress=progress, ranks=ranks).train(resume=resume)
