"""Run folders (ARCHITECTURE.md): config, atomic checkpoints, and rebuilding model and guide.

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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pvae.data import ImageSplit, binarize, load_dataset
from pvae.errors import UserError

CONFIG, CHECKPOINT, METRICS, FIGURES, SAMPLES = "config.json", "checkpoint.pt", "metrics.csv", "figures", "samples"


def registry(kind: str) -> dict[str, type[nn.Module]]:
    """Model or guide classes by name (``kind`` is "model" or "guide")."""
    if kind == "model":
        from models import MODELS

        return MODELS
    from guides import GUIDES

    return GUIDES


def constructor_kwargs(cls: type, candidates: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``candidates`` that ``cls.__init__`` accepts, so one set of flags serves
    every class: each takes what it understands."""
    return {k: v for k, v in candidates.items() if k in _accepted(cls)}


def _accepted(cls: type) -> set[str]:
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


def load_data(config: dict[str, Any]):
    """The run's dataset, prepared as for training (stroke offsets divided by the run's scale)."""
    data = config["data"]
    return load_dataset(data["spec"], max_seq_len=config["train"].get("max_seq_len", 250), scale=data.get("scale"))


def load_split(config: dict[str, Any], split: str, data=None):
    """Split ``split`` of the run's dataset as the run evaluates it.

    A run that binarised grey images dynamically for training evaluates on one fixed
    binarisation, drawn from the run's seed + 1, so every evaluation of the run (per-epoch test
    ELBO, ``pvae bounds``, ``pvae inspect``) sees the same binary images. Stroke data are
    normalised by the scale stored in the run's config.
    """
    data = data or load_data(config)
    chosen = data.split(split)
    if config["data"].get("binarize") == "dynamic":
        chosen = ImageSplit(binarize(chosen.images, seed=config["train"]["seed"] + 1), chosen.labels)
    return chosen


def save_config(run: Path, config: dict[str, Any]) -> None:
    _atomic_write(run / CONFIG, lambda f: f.write(json.dumps(config, indent=2).encode()))


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
    _atomic_write(run / CHECKPOINT, lambda f: torch.save(state, f))


def load_checkpoint(run: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise UserError(f"{run}: no {CHECKPOINT} in this run folder")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a damaged file: torch raises several kinds
        raise UserError(f"{path}: unreadable checkpoint ({e})") from None


def load_run(run: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict, nn.Module, nn.Module | None]:
    """The run's config and its trained model and guide (in eval mode)."""
    config = load_config(run)
    state = load_checkpoint(run, device)
    model = build("model", config["model"]["name"], config["model"]["kwargs"]).to(device)
    model.load_state_dict(state["model"])
    guide = None
    if config.get("guide") is not None:
        guide = build("guide", config["guide"]["name"], config["guide"]["kwargs"]).to(device)
        guide.load_state_dict(state["guide"])
        guide.eval()
    return config, model.eval(), guide


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
