"""Options declared once: a new one reaches --help and its constructor; values given are never
dropped; limits; and run folders written before the spine still load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from guides.rnn import RNNGuide
from models import MODELS
from models.gaussian_vae import GaussianVAE
from models.sketch_vae import SketchVAE
from pvae import options, runs
from pvae.cli import main
from pvae.contracts import Option
from pvae.options import TrainConfig
from pvae.registry import PluginWarning
from pvae.train import Trainer

CLI = [sys.executable, "-m", "pvae.cli", "train", "--no-progress"]


class WideVAE(GaussianVAE):
    """A Gaussian VAE with one more hyperparameter, ``width_factor``, declared only as an Option."""

    def __init__(self, data_dim: int, latent_dim: int = 20, width_factor: int = 1) -> None:
        super().__init__(data_dim, latent_dim, hidden=[8 * width_factor])
        self.width_factor = width_factor


def test_one_declaration_makes_the_flag_and_reaches_the_constructor(monkeypatch, tmp_path, capsys):
    declared = Option("width_factor", 1, "hidden units / 8 of the wide VAE", "networks", int, low=1, scope="model")
    monkeypatch.setitem(options.OPTIONS, "width_factor", declared)
    monkeypatch.setitem(MODELS, "wide", WideVAE)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--width-factor WIDTH_FACTOR" in capsys.readouterr().out
    run = tmp_path / "run"
    args = ["train", "--model", "wide", "--width-factor", "3", "--data", "digits:64", "--steps", "1", "--no-progress"]
    assert main([*args, "--out", str(run)]) == 0
    config, model, _ = runs.load_run(run)
    assert model.width_factor == 3 and config["model"]["kwargs"]["width_factor"] == 3
    assert config["train"]["width_factor"] == 3
    assert main(["train", "--model", "wide", "--width-factor", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--width-factor 0: must be at least 1" in capsys.readouterr().err
    # the gaussian model does not read it: refused, not dropped
    assert main(["train", "--width-factor", "2", "--data", "digits:64", "--out", str(tmp_path / "g")]) == 2
    assert "--width-factor 2: --model gaussian does not use it" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model", "gaussian", "--kl-weight-units", "sketch-rnn"], "--kl-weight-units sketch-rnn: image data"),
        (["--model", "linear", "--likelihood", "bernoulli"], "--likelihood bernoulli: --model linear does not use it"),
        (["--model", "linear", "--conditional"], "--conditional True: --model linear does not use it"),
        (["--model", "sketch"], "--model sketch reads strokes data"),
        (["--guide", "rnn"], "--guide rnn reads strokes data"),
        (["--lr-decay", "0.5"], "--lr-decay 0.5: used only with --lr-schedule sketch"),
    ],
)
def test_unread_and_impossible_options_are_one_line(tmp_path, flags, message):
    result = subprocess.run(
        [*CLI, "--data", "digits:64", *flags, "--out", str(tmp_path / "r")], capture_output=True, text=True
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "r").exists()


def test_steps_alone_is_the_only_limit_and_a_resume_takes_the_limits_given(tmp_path, capsys):
    run = str(tmp_path / "run")
    common = ["--data", "digits:64", "--batch-size", "32", "--latent-dim", "2", "--hidden", "8", "--no-progress"]
    assert TrainConfig.for_model(model="sketch", steps=1500).epochs is None  # no default epoch cap
    assert main(["train", *common, "--steps", "5", "--out", run]) == 0  # 2 batches an epoch: 3 epochs
    assert "reached --steps 5" in capsys.readouterr().err
    assert runs.load_checkpoint(run)["position"]["step"] == 5
    assert main(["train", "--resume", "--out", run, "--steps", "9", "--no-progress"]) == 0
    assert "reached --steps 9" in capsys.readouterr().err
    assert runs.load_checkpoint(run)["position"]["step"] == 9
    assert main(["train", "--resume", "--out", run, "--epochs", "6", "--no-progress"]) == 0
    assert "reached --epochs 6" in capsys.readouterr().err
    rows = (tmp_path / "run" / runs.METRICS).read_text().splitlines()[1:]
    assert [int(r.split(",")[1]) for r in rows] == [2, 4, 5, 6, 8, 9, 10, 12]  # no row lost across resumes


def _old_layout(run, model: torch.nn.Module, guide: torch.nn.Module, config: dict) -> None:
    """A run folder as the version before the spine wrote it: the rnn guide's LSTM under ``rnn.*``,
    a config without the options added since, metrics with a seconds column."""
    guide_state = {k.replace("trunk.rnn.", "rnn."): v for k, v in guide.state_dict().items()}
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    state = {"model": model.state_dict(), "guide": guide_state, "position": {"epoch": 1, "batch": 0, "step": 3}}
    torch.save(state, run / "checkpoint.pt")
    (run / "metrics.csv").write_text("epoch,step,train_loss,test_elbo,test_recon,test_kl,test_L_R,test_L_KL,seconds\n")


def test_a_run_folder_of_the_old_layout_loads(tmp_path, stroke_shapes):
    from pvae.kinds.strokes.data import save_stroke_cache

    save_stroke_cache(tmp_path / "s.npz", {"train": stroke_shapes(12), "test": stroke_shapes(4, seed=1)})
    model = SketchVAE(max_len=6, latent_dim=4, dec_hidden=8, mixtures=2)
    guide = RNNGuide(latent_dim=4, enc_hidden=8)
    train = {"model": "sketch", "guide": "rnn", "objective": "meanfield", "data": f"sketch:{tmp_path / 's.npz'}"}
    config = {
        "train": {**train, "seed": 0, "max_seq_len": 250, "epochs": 1},
        "data": {"spec": train["data"], "name": "s", "kind": "strokes", "scale": 1.0, "rows": 6},
        "model": {"name": "sketch", "kwargs": {"max_len": 6, "latent_dim": 4, "dec_hidden": 8, "mixtures": 2}},
        "guide": {"name": "rnn", "kwargs": {"latent_dim": 4, "enc_hidden": 8, "num_classes": 0}},
    }
    _old_layout(tmp_path / "run", model, guide, config)
    _, loaded_model, loaded_guide = runs.load_run(tmp_path / "run")
    x = torch.zeros(2, 6, 5)
    x[:, :, 4] = 1
    torch.testing.assert_close(loaded_guide.posterior(x).mean, guide.posterior(x).mean)
    assert main(["sample", str(tmp_path / "run"), "-n", "2", "--prior"]) == 0
    trainer = Trainer(TrainConfig(**config["train"], latent_dim=4, enc_hidden=8), tmp_path / "new", progress=False)
    assert trainer.guide_spec["name"] == "rnn"


def test_each_part_lists_exactly_the_options_its_constructor_reads():
    """A model's or guide's ``options`` are the constructor-scope options whose argument its
    constructor takes (so gathering from the parts loses none and invents none); an objective's,
    those of scope "objective" that it takes; a kind's are of scope "data" or read by it."""
    from guides import GUIDES
    from pvae.kinds import KINDS
    from pvae.objectives import OBJECTIVES

    for registry, scopes in (
        (MODELS, ("model", "networks")),
        (GUIDES, ("guide", "networks")),
        (OBJECTIVES, ("objective",)),
    ):
        for name, cls in registry.items():
            accepted = runs.accepted_arguments(cls)
            listed = {o.name for o in cls.options}
            read = {o.name for o in options.OPTIONS.values() if o.scope in scopes and o.argument in accepted}
            assert listed == read, (registry.sort, name)
    for kind in KINDS.values():
        assert all(o.scope == "data" for o in kind.options), kind.name
    assert len(options.OPTIONS) == len(set(options.OPTIONS))


def test_two_declarations_of_one_option_leave_the_later_part_out(monkeypatch):
    twin = Option("latent_dim", 3, "another latent size", "networks", int, scope="networks")
    monkeypatch.setattr(WideVAE, "options", (twin,), raising=False)
    monkeypatch.setitem(MODELS, "wide", WideVAE)
    with pytest.warns(PluginWarning, match=r"^--latent-dim: declared twice, by .* and by model wide \(this process\)"):
        gathered = options.all_options()
    assert gathered["latent_dim"] is not twin and "wide" not in MODELS and "gaussian" in MODELS
    monkeypatch.setitem(MODELS, "wide", GaussianVAE)  # monkeypatch deletes it again, as it found none


def test_a_part_registered_by_assignment_brings_its_options(monkeypatch):
    width = Option("width_mult", 1, "hidden units / 8", "networks", int, low=1, scope="model")
    monkeypatch.setattr(WideVAE, "options", (width,), raising=False)
    monkeypatch.setitem(MODELS, "wide", WideVAE)
    assert options.OPTIONS["width_mult"] is width  # gathered again, in the same dict
    del MODELS["wide"]
    assert "width_mult" not in options.all_options()
    monkeypatch.setitem(MODELS, "wide", WideVAE)
