"""Plug-ins from outside pvae (``pvae.registry``): a package installed as a ``.dist-info`` on the
path, whose entry point (group ``pvae.models``) registers a ``GaussianVAE`` subclass, is trained by
``pvae train --model NAME`` and its run folder is read back by ``pvae bounds`` and ``pvae inspect``;
a plug-in that fails to import, names something that is not a part, says another name, or takes a
name already taken is left out with one warning line naming its package, and the rest still work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pvae.contracts import Model
from pvae.registry import PluginWarning, Registry

PLUGIN = '''
from models.gaussian_vae import GaussianVAE


class NarrowVAE(GaussianVAE):
    """A Gaussian VAE whose own defaults are small: the plug-in's model."""

    name = "narrow"
    train_defaults = {"hidden": [16], "latent_dim": 3}


class NotAModel:
    name = "not-a-model"


class Unnamed(GaussianVAE):
    """Inherits the name "gaussian": refused under any other."""


class Impostor(GaussianVAE):
    name = "gaussian"
'''


@pytest.fixture(autouse=True)
def fresh_plugin_module():
    """Each test imports its own ``pvae_plugin_demo``, not the one an earlier test left in ``sys.modules``."""
    sys.modules.pop("pvae_plugin_demo", None)
    yield
    sys.modules.pop("pvae_plugin_demo", None)


def install(root: Path, entry_points: str, code: str = PLUGIN, dist: str = "pvae-plugin-demo") -> Path:
    """A package ``pvae_plugin_demo`` with a ``.dist-info`` (METADATA, entry_points.txt) in ``root``, as
    pip would install it; put ``root`` on the path to install it."""
    (root / "pvae_plugin_demo").mkdir(parents=True)
    (root / "pvae_plugin_demo" / "__init__.py").write_text(code)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return root


def models_registry() -> Registry:
    """The models' registry as ``models.MODELS`` is built, read afresh (the real one is read once)."""
    return Registry("model", Model, "models", "pvae.models")


def pvae(*args: str, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "pvae.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_a_plugin_model_trains_and_its_run_folder_is_evaluated(tmp_path):
    path = install(tmp_path / "site", "[pvae.models]\nnarrow = pvae_plugin_demo:NarrowVAE\n")
    run = tmp_path / "run"
    help_text = pvae("train", "--help", path=path).stdout
    assert "narrow" in help_text and "narrow: 16" in help_text  # a choice, with its own defaults beside
    common = ("--data", "digits:60", "--epochs", "1", "--batch-size", "20", "--no-progress")
    trained = pvae("train", "--model", "narrow", *common, "--out", str(run), path=path)
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"name": "narrow", "kwargs": {**config["model"]["kwargs"], "hidden": [16]}}
    bounds = pvae("bounds", str(run), "--k", "1", "5", "--limit", "8", "--no-progress", path=path)
    assert bounds.returncode == 0, bounds.stderr
    assert len(list((run / "bounds").glob("*/bounds.json"))) == 1
    inspected = pvae("inspect", str(run), "--limit", "12", path=path)
    assert inspected.returncode == 0, inspected.stderr
    assert "of 3 units active" in inspected.stdout
    sampled = pvae("sample", str(run), "-n", "4", path=path)
    assert sampled.returncode == 0, sampled.stderr
    without = pvae("bounds", str(run), "--k", "1", "--limit", "4", "--no-progress", path=tmp_path / "elsewhere")
    assert without.returncode == 2 and without.stderr.count("\n") == 1  # the plug-in is gone: one line
    assert "narrow" in without.stderr, without.stderr


def test_a_plugin_is_read_beside_the_builtins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(install(tmp_path, "[pvae.models]\nnarrow = pvae_plugin_demo:NarrowVAE\n")))
    registry = models_registry()
    assert registry["narrow"].__name__ == "NarrowVAE" and "gaussian" in registry
    assert registry.origin("narrow") == "pvae-plugin-demo" and registry.origin("gaussian") == "pvae"


@pytest.mark.parametrize(
    "entry_point, code, complaint",
    [
        ("gaussian = pvae_plugin_demo:Impostor", PLUGIN, "clashes with pvae's own model of that name; left out"),
        ("broken = pvae_plugin_demo:NarrowVAE", "import no_such_module\n", "failed to import: ModuleNotFoundError"),
        ("missing = pvae_plugin_demo:Nowhere", PLUGIN, "failed to import: AttributeError"),
        ("not-a-model = pvae_plugin_demo:NotAModel", PLUGIN, "is not a model (a subclass of pvae.contracts.Model)"),
        ("other = pvae_plugin_demo:NarrowVAE", PLUGIN, "the class must say name = 'other' itself (it has 'narrow')"),
        (
            "unnamed = pvae_plugin_demo:Unnamed",
            PLUGIN,
            "must say name = 'unnamed' itself (it has 'gaussian')",
        ),
    ],
    ids=["clash", "import-error", "missing-name", "not-a-model", "other-name", "inherited-name"],
)
def test_a_bad_plugin_is_one_line_naming_its_package(tmp_path, monkeypatch, entry_point, code, complaint):
    monkeypatch.syspath_prepend(str(install(tmp_path, f"[pvae.models]\n{entry_point}\n", code)))
    with pytest.warns(PluginWarning) as said:
        registry = models_registry()
        names = list(registry)
    assert len(said) == 1
    message = str(said[0].message)
    assert message.startswith("plug-in pvae-plugin-demo: entry point ") and complaint in message, message
    assert "\n" not in message
    assert "gaussian" in names and registry["gaussian"].__module__ == "models.gaussian_vae"  # pvae's own still


def test_a_broken_plugin_leaves_pvae_help_and_training_working(tmp_path):
    path = install(tmp_path / "site", "[pvae.models]\nbroken = pvae_plugin_demo:NarrowVAE\n", "import no_such_module\n")
    shown = pvae("--help", path=path)
    assert shown.returncode == 0 and "train" in shown.stdout
    assert shown.stderr.count("\n") == 1 and shown.stderr.startswith("pvae: warning: plug-in pvae-plugin-demo: ")
    refused = pvae("train", "--model", "broken", "--out", str(tmp_path / "run"), path=path)
    assert refused.returncode == 2 and "invalid choice: 'broken'" in refused.stderr


def test_two_plugins_of_one_name_name_both_packages(tmp_path, monkeypatch):
    for dist in ("first-plugin", "second-plugin"):
        root = install(tmp_path / dist, "[pvae.models]\nnarrow = pvae_plugin_demo:NarrowVAE\n", dist=dist)
        monkeypatch.syspath_prepend(str(root))
    with pytest.warns(
        PluginWarning, match=r"^plug-in (first|second)-plugin: .*clashes with plug-in (first|second)-plugin's model"
    ):
        registry = models_registry()
        assert registry.origin("narrow") in ("first-plugin", "second-plugin")
