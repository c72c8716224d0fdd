"""Architectures built from rule-aware layers, and the depth grouping of their measured layers."""

from __future__ import annotations

DEPTH_GROUPS = ("early", "middle", "deep")


def depth_groups(n_layers: int) -> list[str]:
    """Nayebi et al.'s grouping: the first ``n // 3`` layers early, the next ``n // 3`` middle, the rest deep.

    With fewer than three layers the groups are taken in order of depth from the deep end, so a
    two-layer network is (middle, deep) rather than all deep.
    """
    third = n_layers // 3
    if third == 0:
        return list(DEPTH_GROUPS[3 - n_layers :])
    return ["early"] * third + ["middle"] * third + ["deep"] * (n_layers - 2 * third)


def build_model(model_spec, task, feedback: str | None, seed: int):
    """Build (and initialise) the network a :class:`~lrid.config.ModelSpec` describes for ``task``."""
    from lrid.models.mlp import MLP

    if model_spec.arch != "mlp":
        raise ValueError(f"unknown architecture {model_spec.arch!r}")
    model = MLP(model_spec.hidden, task.n_classes, model_spec.activation, feedback=feedback, seed=seed)
    model.build((None, *task.input_shape))
    return model
