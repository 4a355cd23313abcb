"""The combination matrix: every registered model x guide x objective x data kind either trains two
steps with a finite loss or is refused with the project's ``UserError`` in one line, never any
other exception. New models, guides, objectives and data kinds are picked up from the registries;
a new data kind needs a tiny dataset in ``TINY_DATA``."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from conftest import write_abc_tunes, write_test_fonts

from guides import GUIDES
from models import MODELS
from pvae.errors import UserError
from pvae.kinds.base import KINDS
from pvae.kinds.strokes.data import save_stroke_cache
from pvae.objectives import OBJECTIVES
from pvae.options import OPTIONS
from pvae.train import TrainConfig, Trainer

# Sizes small enough that a step takes milliseconds; an option a combination does not read is
# dropped from its config (a combination refuses options it does not read).
TINY = dict(
    latent_dim=2,
    hidden=[8],
    enc_hidden=4,
    dec_hidden=8,
    mixtures=2,
    flows=1,
    rank=1,
    baseline_epochs=1,
    particles=2,
    batch_size=4,
    steps=2,
    segments=2,
    bars=2,
    max_commands=12,
)

# Options that change what a model is made of, each value tried in every combination of that model.
VARIANTS = {
    "gaussian": [dict(prior="normal"), dict(prior="mog10")],
    "strokes-raster": [dict(renderer=r, primitive=p) for r in ("soft", "neural") for p in ("line", "bezier")],
    "melody": [dict(decoder="flat"), dict(decoder="hierarchical")],
}


def _tiny_strokes(folder) -> str:
    rng = np.random.default_rng(0)
    sketches = [
        np.column_stack([rng.integers(-5, 6, (n, 2)), np.r_[np.zeros(n - 1), 1]]) for n in rng.integers(3, 6, 16)
    ]
    path = folder / "tiny_strokes.npz"
    save_stroke_cache(path, {"train": sketches[:12], "test": sketches[12:]})
    return f"sketch:{path}"


def _tiny_melodies(folder) -> str:
    return f"abc:{write_abc_tunes(folder / 'tiny_tunes.abc')}"


TINY_DATA = {
    "image": lambda folder: "digits:16",
    "strokes": _tiny_strokes,
    "events": _tiny_melodies,
    "svg": lambda folder: f"svg:{write_test_fonts(folder / 'fonts')}",
}


def _memoised(load):
    """``load`` remembering what it read, by its arguments (the options dict by value)."""
    memo = {}

    def wrapper(spec, options=None, saved=None, splits=None):
        key = json.dumps([spec, options, saved, splits], sort_keys=True, default=str)
        if key not in memo:
            memo[key] = load(spec, options, saved, splits)
        return memo[key]

    return wrapper


@pytest.fixture(scope="module")
def specs(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("matrix")
    missing = set(KINDS) - set(TINY_DATA)
    assert not missing, f"give the data kinds {missing} a tiny dataset in TINY_DATA"
    originals = {name: kind.load for name, kind in KINDS.items()}
    for kind in KINDS.values():  # each tiny dataset is read once for the whole matrix
        kind.load = _memoised(kind.load)
    yield {name: make(folder) for name, make in TINY_DATA.items()}
    for name, kind in KINDS.items():
        kind.load = originals[name]


def _attempt(model: str, guide: str, objective: str, data: str, out, variant: dict, steps: int = 2) -> list | str:
    """The finite losses of ``steps`` steps on one batch, or the refusal's message."""
    tiny = dict(TINY)
    while True:
        config = TrainConfig.for_model(model=model, guide=guide, objective=objective, data=data, **tiny, **variant)
        try:
            torch.manual_seed(0)
            trainer = Trainer(config, out, progress=False)
            x, labels = next(trainer.train_split.batches(config.batch_size, trainer.data_generator))
            y = trainer.model.condition(x, labels)
            losses = [trainer.svi.step(x, y) for _ in range(steps)]
            assert all(map(math.isfinite, losses))
            return losses
        except UserError as e:
            flag = str(e).split(" ", 1)[0]
            ours = [name for name in tiny if OPTIONS[name].flag == flag]
            if ours and "does not use it" in str(e):
                del tiny[ours[0]]
                continue
            return str(e)


def test_every_combination_trains_or_refuses_in_one_line(specs, tmp_path):
    outcomes = {}
    for model, guide, objective, kind in itertools.product(MODELS, GUIDES, OBJECTIVES, KINDS):
        for variant in VARIANTS.get(model, [{}]):
            outcome = _attempt(model, guide, objective, specs[kind], tmp_path / "unused", variant)
            outcome = "trained" if isinstance(outcome, list) else outcome
            key = (model, guide, objective, kind, tuple(variant.values()))
            assert outcome == "trained" or (outcome and "\n" not in outcome), (*key, outcome)
            outcomes[key] = outcome
    trained = [c for c, o in outcomes.items() if o == "trained"]
    # every model, guide and objective trains in some combination, on each kind a model reads
    assert {c[0] for c in trained} == set(MODELS)
    assert {c[1] for c in trained} == set(GUIDES)
    assert {c[2] for c in trained} == set(OBJECTIVES)
    assert {c[3] for c in trained} == set(KINDS)
    for model, variants in VARIANTS.items():  # and each variant of a model
        assert {c[4] for c in trained if c[0] == model} == {tuple(v.values()) for v in variants}
    # refusals name the flag at fault
    assert all(o.startswith("--") for o in outcomes.values() if o != "trained")
    print(f"{len(trained)} of {len(outcomes)} combinations train; the others are refused in one line")


def test_every_combination_traces_as_it_trains_or_refuses_jit_in_one_line(specs, tmp_path):
    """``--jit``: a combination that trains either gives the eager run's losses, step for step from
    the same seed (the trace draws the same numbers: ``TracedLoss`` records on a forked random
    state), or is refused in one line that names --jit. Three steps: the first is eager
    (validated), the second records the trace, the third replays it."""
    traced = set()
    for model, guide, objective, kind in itertools.product(MODELS, GUIDES, OBJECTIVES, KINDS):
        for variant in VARIANTS.get(model, [{}]):
            eager = _attempt(model, guide, objective, specs[kind], tmp_path / "unused", variant, steps=3)
            if not isinstance(eager, list):
                continue
            jit = _attempt(model, guide, objective, specs[kind], tmp_path / "unused", {**variant, "jit": True}, 3)
            key = (model, guide, objective, kind, tuple(variant.values()))
            if isinstance(jit, str):  # the trainer's refusal, never a trace that differs
                assert jit.startswith("--jit: --") and "not traceable" in jit and "\n" not in jit, (*key, jit)
                continue
            assert jit == pytest.approx(eager, rel=1e-4), key
            traced.add(key)
    # every model that declares itself traceable traces, with some guide and objective
    assert {key[0] for key in traced} == {name for name, cls in MODELS.items() if cls.traceable}
    print(f"{len(traced)} combinations train the same under --jit; the others refuse it in one line")
