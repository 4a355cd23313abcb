"""Shared test fixtures: tiny models, and paths to ../shared/data when it is there."""

from __future__ import annotations

from pathlib import Path

import pyro
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_file():
    """``shared_file(*parts)``: a path under ../shared/data, or a skip when the checkout has none."""

    def find(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"{path} is absent (../shared/data exists only beside the project's own checkout)")
        return path

    return find


@pytest.fixture(autouse=True)
def _fresh_pyro():
    """Each test starts with an empty param store, validation on and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
