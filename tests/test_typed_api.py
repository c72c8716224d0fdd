"""Every public function and method in lrid/ annotates its parameters and return type."""

from __future__ import annotations

import ast
from pathlib import Path

LRID = Path(__file__).resolve().parent.parent / "lrid"

# Names (``file:name``) still untyped; shrink me.
ALLOWED: set[str] = {
    "lrid/models/__init__.py:build_network",
    "lrid/models/__init__.py:build_model",
    "lrid/models/alexnet.py:AlexNet.__init__",
    "lrid/models/alexnet.py:AlexNet.call",
    "lrid/models/base.py:ActivityCapture.__init__",
    "lrid/models/base.py:capturing",
    "lrid/models/base.py:MeasuredModel.build",
    "lrid/models/base.py:MeasuredModel.forward_with_activity",
    "lrid/models/base.py:MeasuredModel.predict_logits",
    "lrid/models/convnet.py:ConvNet.__init__",
    "lrid/models/convnet.py:ConvNet.call",
    "lrid/models/knet.py:KNet.__init__",
    "lrid/models/knet.py:KNet.call",
    "lrid/models/layers.py:scheme_std",
    "lrid/models/layers.py:FeedbackLayer.__init__",
    "lrid/models/layers.py:FeedbackLayer.kernel_shape",
    "lrid/models/layers.py:FeedbackLayer.linear",
    "lrid/models/layers.py:FeedbackLayer.input_gradient",
    "lrid/models/layers.py:FeedbackLayer.kernel_gradient",
    "lrid/models/layers.py:FeedbackLayer.build",
    "lrid/models/layers.py:FeedbackLayer.feedback_matrix",
    "lrid/models/layers.py:FeedbackLayer.preactivation",
    "lrid/models/layers.py:FeedbackLayer.call",
    "lrid/models/layers.py:FeedbackLayer.get_config",
    "lrid/models/layers.py:FeedbackDense.__init__",
    "lrid/models/layers.py:FeedbackDense.kernel_shape",
    "lrid/models/layers.py:FeedbackDense.linear",
    "lrid/models/layers.py:FeedbackDense.input_gradient",
    "lrid/models/layers.py:FeedbackDense.kernel_gradient",
    "lrid/models/layers.py:FeedbackDense.compute_output_shape",
    "lrid/models/layers.py:FeedbackDense.get_config",
    "lrid/models/layers.py:FeedbackConv2D.__init__",
    "lrid/models/layers.py:FeedbackConv2D.kernel_shape",
    "lrid/models/layers.py:FeedbackConv2D.linear",
    "lrid/models/layers.py:FeedbackConv2D.input_gradient",
    "lrid/models/layers.py:FeedbackConv2D.kernel_gradient",
    "lrid/models/layers.py:FeedbackConv2D.compute_output_shape",
    "lrid/models/layers.py:FeedbackConv2D.get_config",
    "lrid/models/mlp.py:MLP.__init__",
    "lrid/models/mlp.py:MLP.call",
    "lrid/models/population.py:PopulationMLP.__init__",
    "lrid/models/population.py:PopulationMLP.load",
    "lrid/models/population.py:PopulationMLP.feedback_matrix",
    "lrid/models/population.py:PopulationMLP.projection",
    "lrid/models/population.py:PopulationMLP.layer",
    "lrid/models/population.py:PopulationMLP.forward_with_activity",
    "lrid/models/population.py:PopulationMLP.logits",
    "lrid/models/population.py:PopulationMLP.members_finite",
    "lrid/models/resnet.py:ResNet.__init__",
    "lrid/models/resnet.py:ResNet.call",
    "lrid/rules/base.py:build_optimizer",
    "lrid/rules/base.py:task_loss_function",
    "lrid/rules/base.py:restrict_weight_decay",
    "lrid/rules/base.py:LearningRule.__init__",
    "lrid/rules/base.py:LearningRule.task_loss",
    "lrid/rules/base.py:LearningRule.make_optimizer",
    "lrid/rules/base.py:LearningRule.feedback_gradient",
    "lrid/rules/base.py:LearningRule.make_train_step",
    "lrid/rules/base.py:LearningRule.kernel_update_signals",
    "lrid/rules/information_alignment.py:InformationAlignment.local_loss",
    "lrid/rules/information_alignment.py:InformationAlignment.feedback_gradient",
    "lrid/rules/node_perturbation.py:sample_noise",
    "lrid/rules/node_perturbation.py:error_change_coefficients",
    "lrid/rules/node_perturbation.py:node_perturbation_gradients",
    "lrid/rules/node_perturbation.py:model_perturbation_gradients",
    "lrid/rules/node_perturbation.py:glorot_std",
    "lrid/rules/node_perturbation.py:normalize_columns",
    "lrid/rules/node_perturbation.py:NodePerturbation.perturbation_gradients",
    "lrid/rules/node_perturbation.py:NodePerturbation.kernel_update_signals",
    "lrid/rules/node_perturbation.py:NodePerturbation.make_train_step",
    "lrid/rules/target_propagation.py:DenseInverse.__init__",
    "lrid/rules/target_propagation.py:DenseInverse.initialised",
    "lrid/rules/target_propagation.py:DenseInverse.__call__",
    "lrid/rules/target_propagation.py:ConvInverse.__init__",
    "lrid/rules/target_propagation.py:ConvInverse.initialised",
    "lrid/rules/target_propagation.py:ConvInverse.__call__",
    "lrid/rules/target_propagation.py:difference_target",
    "lrid/rules/target_propagation.py:propagate_targets",
    "lrid/rules/target_propagation.py:dtp_first_target",
    "lrid/rules/target_propagation.py:squared_error",
    "lrid/rules/target_propagation.py:task_loss",
    "lrid/rules/target_propagation.py:forward_losses",
    "lrid/rules/target_propagation.py:inverse_losses",
    "lrid/rules/target_propagation.py:DifferenceTargetPropagation.hidden_targets",
    "lrid/rules/target_propagation.py:SimplifiedDifferenceTargetPropagation.hidden_targets",
}


def _is_public(name: str) -> bool:
    """Public unless it has one leading underscore; dunders count as public."""
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _missing(func: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> bool:
    """True when a parameter (not self/cls, not *args/**kwargs) or the return lacks an annotation."""
    args = func.args
    positional = args.posonlyargs + args.args
    if is_method and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    params = positional + args.kwonlyargs
    return func.returns is None or any(arg.annotation is None for arg in params)


def _untyped(path: Path) -> list[tuple[int, str]]:
    """The (line, name) of each public function or method of ``path`` missing an annotation."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and _is_public(node.name) and _missing(node, False):
            found.append((node.lineno, node.name))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, functions) and _is_public(item.name) and _missing(item, True):
                    found.append((item.lineno, f"{node.name}.{item.name}"))
    return found


def test_public_api_is_typed() -> None:
    """No public function or method of lrid/ lacks a parameter or return annotation."""
    untyped = []
    for path in sorted(LRID.rglob("*.py")):
        rel = path.relative_to(LRID.parent).as_posix()
        for line, name in _untyped(path):
            if f"{rel}:{name}" not in ALLOWED:
                untyped.append(f"{rel}:{line} {name}")
    assert not untyped, "untyped public functions:\n" + "\n".join(untyped)


def test_checker_flags_untyped_code(tmp_path: Path) -> None:
    """The checker finds a missing annotation and accepts a fully typed definition."""
    source = tmp_path / "m.py"
    source.write_text(
        "def f(x) -> int: ...\n"
        "def g(x: int): ...\n"
        "def h(x: int, *a, **k) -> int: ...\n"
        "def _private(x): ...\n"
        "class C:\n"
        "    def m(self, y) -> None: ...\n"
        "    def __init__(self, z: int): ...\n"
        "    def ok(self, y: int) -> None: ...\n"
        "class _Hidden:\n"
        "    def m(self, y): ...\n"
    )
    assert [name for _, name in _untyped(source)] == ["f", "g", "C.m", "C.__init__"]
