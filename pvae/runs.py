"""Run folders (``docs/architecture.md``): config, atomic checkpoints, rebuilding model and guide.

A run folder holds everything ``pvae bounds|sample|inspect`` need: ``config.json`` names the
model and guide classes with their constructor arguments, ``checkpoint.pt`` their state dicts.
Checkpoints hold only tensors and plain Python values, so they load with ``weights_only=True``
(no pickled code runs), and they are written to a temporary file that replaces the old one in a
single rename, so an interruption never leaves a half-written checkpoint.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from guides import GUIDES
from models import MODELS
from pvae.errors import UserError
from pvae.kinds.base import kind_of, load_dataset

CONFIG, CHECKPOINT, METRICS, FIGURES = "config.json", "checkpoint.pt", "metrics.csv", "figures"
PREVIOUS = "checkpoint.prev.pt"  # the checkpoint before the newest, kept in case the newest is damaged
TIMING, LOCK = "timing.csv", ".lock"


def registry(kind: str) -> Mapping[str, type[nn.Module]]:
    """Model or guide classes by name (``kind`` is "model" or "guide")."""
    return MODELS if kind == "model" else GUIDES


def constructor_kwargs(cls: type, candidates: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``candidates`` that ``cls.__init__`` accepts, so one set of options serves
    every class: each takes what it understands (``pvae.options.unused_options`` refuses an option
    that no class of the combination takes)."""
    accepted = accepted_arguments(cls)
    return {k: v for k, v in candidates.items() if k in accepted}


def accepted_arguments(cls: type) -> set[str]:
    """Keyword names ``cls(...)`` accepts, following ``**kwargs`` that an ``__init__`` passes on to
    its parent's."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def make_spec(kind: str, name: str, candidates: dict[str, Any]) -> dict[str, Any]:
    """``{"name": name, "kwargs": ...}``: the class's constructor arguments among ``candidates``."""
    classes = registry(kind)
    if name not in classes:
        raise UserError(f"--{kind} {name}: unknown; choose one of {', '.join(classes)}")
    return {"name": name, "kwargs": constructor_kwargs(classes[name], candidates)}


def build(kind: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    """An instance of the model or guide class called ``name``."""
    classes = registry(kind)
    if name not in classes:
        raise UserError(f"unknown {kind} {name!r}; choose one of {', '.join(classes)}")
    try:
        return classes[name](**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"cannot build {kind} {name!r}: {e}") from None


def load_data(config: dict[str, Any], splits: tuple[str, ...] | None = None):
    """The run's dataset (the ``splits`` asked for, default all), prepared as for training (stroke
    offsets divided by the run's scale and padded to its rows)."""
    data = config["data"]
    return load_dataset(data["spec"], config["train"], saved=data, splits=splits)


def load_split(config: dict[str, Any], split: str, data=None):
    """Split ``split`` of the run's dataset as every evaluation of the run sees it (its data
    kind's ``evaluation_split``: e.g. one fixed binarisation of grey images)."""
    return kind_of(config).evaluation_split(data or load_data(config, (split,)), split, config)


def output_dir(run: str | os.PathLike, command: str, **arguments: Any) -> Path:
    """``RUN/COMMAND/NAME=VALUE,...``: where an evaluation or generation command writes, one folder
    per set of arguments (the ones it reads, in the order of its flags, with the values it used),
    so neither training's outputs nor another command's are overwritten. ``None`` shows as ``all``;
    a value with characters a folder name should not hold (a data spec's path) has them replaced by
    ``_``."""

    def shown_value(v: Any) -> str:
        text = "all" if v is None else "-".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60]

    shown = ",".join(f"{k}={shown_value(v)}" for k, v in arguments.items())
    folder = Path(run) / command / shown
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_config(run: Path, config: dict[str, Any]) -> None:
    atomic_write_text(run / CONFIG, json.dumps(config, indent=2))


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def load_config(run: str | os.PathLike) -> dict[str, Any]:
    """The run's config; a folder that is not a run raises ``UserError``."""
    run = Path(run)
    if not (run / CONFIG).is_file():
        raise UserError(f"{run}: not a run folder (no {CONFIG})")
    try:
        return json.loads((run / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{run / CONFIG}: unreadable ({e})") from None


def save_checkpoint(run: Path, state: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically and keep the one it replaces as ``checkpoint.prev.pt``."""
    tmp = run / (CHECKPOINT + ".tmp")
    _write_synced(tmp, lambda f: torch.save(state, f))
    if (run / CHECKPOINT).is_file():
        os.replace(run / CHECKPOINT, run / PREVIOUS)
    os.replace(tmp, run / CHECKPOINT)


def has_checkpoint(run: str | os.PathLike) -> bool:
    return any((Path(run) / name).is_file() for name in (CHECKPOINT, PREVIOUS))


def load_checkpoint(run: str | os.PathLike, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The newest readable checkpoint of the run, on the CPU (``load_state_dict`` moves weights
    where they belong): ``checkpoint.pt``, or ``checkpoint.prev.pt`` (with one line to ``warn``)
    when the newest is missing or damaged; ``UserError`` in one short line when neither loads."""
    run = Path(run)
    problems: dict[str, str] = {}
    for name in (CHECKPOINT, PREVIOUS):
        path = run / name
        if not path.is_file():
            problems[name] = "missing"
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # load_state_dict moves weights
        except Exception as e:  # a damaged file: torch raises several kinds
            problems[name] = _damage(path, e)
            continue
        if name == PREVIOUS:
            step = state["position"]["step"]
            (warn or warnings.warn)(
                f"{run / CHECKPOINT}: {problems[CHECKPOINT]}; using the previous checkpoint {path} (step {step})"
            )
        return state
    causes = set(problems.values())
    shown = (
        f"{' and '.join(problems)}: {causes.pop()}"
        if len(causes) == 1
        else "; ".join(f"{name}: {cause}" for name, cause in problems.items())
    )
    raise UserError(f"{run}: no readable checkpoint ({shown})")


def _damage(path: Path, error: Exception) -> str:
    """What is wrong with a checkpoint file torch cannot load, in a few words (torch's messages
    run to a paragraph): a checkpoint is a zip archive, so a file that is none was cut short."""
    if not path.stat().st_size:
        return "empty"
    if not zipfile.is_zipfile(path):
        return "truncated (not a whole zip archive)"
    if isinstance(error, pickle.UnpicklingError):
        return "holds more than tensors and plain values (torch.load with weights_only refuses it)"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"unreadable ({first[:80]})"


class RunLock:
    """An exclusive lock on a run folder (``RUN/.lock``, ``fcntl.flock``) while a process trains
    in it; the system releases it when the process ends, even by ``kill -9``."""

    def __init__(self, run: Path) -> None:
        self.path, self.file = run / LOCK, None

    def __enter__(self) -> RunLock:
        import fcntl  # lazy: POSIX only

        self.file = open(self.path, "a")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise UserError(f"--out {self.path.parent}: another pvae train is running in this folder") from None
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def load_run(run: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict, nn.Module, nn.Module | None]:
    """The run's config and its trained model and guide (in eval mode)."""
    config = load_config(run)
    state = load_checkpoint(run)
    model = build("model", config["model"]["name"], config["model"]["kwargs"]).to(device)
    model.load_state_dict(state["model"])
    guide = None
    if config.get("guide") is not None:
        guide = build("guide", config["guide"]["name"], config["guide"]["kwargs"]).to(device)
        guide.load_state_dict(state["guide"])
        guide.eval()
    return config, model.eval(), guide


def _write_synced(path: Path, write: Callable) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _atomic_write(path: Path, write: Callable) -> None:
    """Write ``path`` so that it is either the old file or the whole new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    _write_synced(tmp, write)
    os.replace(tmp, path)
