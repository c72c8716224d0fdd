"""Shared fixtures. TensorFlow's logging is quieted before anything imports it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

TINY_SWEEP = """
name: tiny
task: {name: digits}
model: {arch: mlp, hidden: [32, 32], activation: tanh}
train: {epochs: 3, batch_size: 64}
observe: {points: 6, probe_size: 64}
rules:
  sgdm: {lr: 0.05}
  adam: {lr: 0.005}
  fa: {lr: 0.05}
  ia: {lr: 0.05}
grid:
  model_seed: [0, 1, 2]
  data_seed: [0, 1]
"""


@pytest.fixture(scope="session")
def tiny_sweep_file(tmp_path_factory) -> Path:
    """A 24-run sweep (4 rules x 6 seeds) of small MLPs that trains in well under a minute."""
    path = tmp_path_factory.mktemp("sweeps") / "tiny.yaml"
    path.write_text(TINY_SWEEP)
    return path


@pytest.fixture(scope="session")
def tiny_store(tiny_sweep_file, tmp_path_factory) -> Path:
    """The tiny sweep generated once per test session (tests must not modify it)."""
    from lrid.config import load_sweep
    from lrid.generate import generate

    root = tmp_path_factory.mktemp("store") / "store"
    summary = generate(load_sweep(tiny_sweep_file), root, progress=False)
    assert summary.complete == 24, summary
    return root
