"""The learning-rule interface.

A rule is two things kept apart, in the spirit of optax's gradient transformations: a *signal source*
(which backward signal each layer receives, and any local losses that train auxiliary state such as
feedback kernels) and an *optimizer* (SGD with momentum or Adam) that applies the resulting updates.
Gradient-replacing rules (fa, ia, ...) therefore compose with either optimizer through a hyperparameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from lrid.lazy_import import keras, tf

if TYPE_CHECKING:
    from lrid.models.base import MeasuredModel


class Hyperparameters(BaseModel):
    """Base for a rule's hyperparameters: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SGDHyperparameters(Hyperparameters):
    """Plain stochastic gradient descent: ``w <- w - lr g``."""

    lr: float = Field(0.01, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay on forward kernels")


class SGDMomentumHyperparameters(Hyperparameters):
    """SGD with (heavy-ball) momentum, Keras form: ``v <- m v - lr g; w <- w + v``."""

    lr: float = Field(0.01, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay on forward kernels")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum coefficient")


class AdamHyperparameters(Hyperparameters):
    """Adam (Kingma & Ba 2015) with Keras's epsilon convention."""

    lr: float = Field(1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay on forward kernels")
    beta_1: float = Field(0.9, ge=0, lt=1, description="first-moment decay")
    beta_2: float = Field(0.999, ge=0, lt=1, description="second-moment decay")
    epsilon: float = Field(1e-7, gt=0, description="added to sqrt(v)")


class ComposableHyperparameters(Hyperparameters):
    """Hyperparameters of a gradient-replacing rule: which optimizer applies its updates, and its settings."""

    optimizer: Literal["sgd", "sgdm", "adam"] = Field("sgdm", description="optimizer applying the updates")
    lr: float = Field(0.01, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay on forward kernels")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum (optimizer: sgdm)")
    beta_1: float = Field(0.9, ge=0, lt=1, description="first-moment decay (optimizer: adam)")
    beta_2: float = Field(0.999, ge=0, lt=1, description="second-moment decay (optimizer: adam)")
    epsilon: float = Field(1e-7, gt=0, description="added to sqrt(v) (optimizer: adam)")


def build_optimizer(optimizer: str, hparams: Any) -> Any:
    """A Keras optimizer for ``"sgd"``, ``"sgdm"`` or ``"adam"`` from the matching fields of ``hparams``.

    ``weight_decay`` is Keras's decoupled decay (``w <- w - lr * wd * w`` each step); which variables it
    applies to is set by :func:`restrict_weight_decay` before the optimizer is built.
    """
    decay = hparams.weight_decay or None
    if optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=hparams.lr, weight_decay=decay)
    if optimizer == "sgdm":
        return keras.optimizers.SGD(learning_rate=hparams.lr, momentum=hparams.momentum, weight_decay=decay)
    if optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=hparams.lr,
            beta_1=hparams.beta_1,
            beta_2=hparams.beta_2,
            epsilon=hparams.epsilon,
            weight_decay=decay,
        )
    raise ValueError(f"unknown optimizer {optimizer!r}")


#: task losses a rule can descend: a task names one (``Task.loss``) and every rule's step reports it
LOSSES = ("cross_entropy", "mse")


def task_loss_function(loss: str) -> Any:
    """``loss(targets, outputs)`` averaged over the batch: softmax cross-entropy of integer labels against
    logits, or the mean squared error of real-valued targets (regression tasks such as teacher_student)."""
    if loss == "cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if loss == "mse":
        return keras.losses.MeanSquaredError()
    raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")


def restrict_weight_decay(optimizer: Any, model: MeasuredModel) -> None:
    """Decay only the forward kernels: never feedback kernels (decay would shrink a fixed B towards zero
    and move a learned B's fixed point), biases or normalisation parameters. Call before building."""
    kernels = {id(layer.kernel) for layer in model.measured_layers}
    optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in kernels])


class LearningRule:
    """Turns (model, batch) into a weight update.

    Subclasses set the class attributes and override :meth:`feedback_gradient` (rules that learn their
    feedback kernels) or :meth:`make_train_step` (rules with no backward pass at all). The default train
    step differentiates the task loss through the layers' feedback paths and hands every gradient, with
    the feedback kernels' update signals, to the optimizer.

    Attributes:
        name: registry name used in sweep files.
        description: one line for ``lrid rules``.
        reference: the paper that defines the rule.
        Hyperparameters: pydantic model validating the rule's hyperparameters.
        feedback: the layers' feedback kind: None (exact backprop), "fixed" or "learned".
        optimizer: the optimizer, unless the hyperparameters choose one.
        losses: the task losses (:data:`LOSSES`) the rule can descend.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str]
    Hyperparameters: ClassVar[type[Hyperparameters]] = ComposableHyperparameters
    feedback: ClassVar[str | None] = None
    optimizer: ClassVar[str | None] = None
    losses: ClassVar[tuple[str, ...]] = LOSSES

    def __init__(self, hparams: dict | None = None, seed: int = 0, loss: str = "cross_entropy") -> None:
        # The rule's own Hyperparameters model; each rule reads the fields it declares.
        self.hparams: Any = self.Hyperparameters(**(hparams or {}))
        # Seeds the rule's own randomness (e.g. perturbation noise), so a run is reproducible.
        self.seed = seed
        if loss not in self.losses:
            raise ValueError(f"rule {self.name!r} cannot descend loss {loss!r}; it supports {', '.join(self.losses)}")
        #: the task loss the rule descends and its steps report (see :func:`task_loss_function`)
        self.loss = loss

    def task_loss(self, targets: Any, outputs: Any) -> Any:
        """The task's loss of the network's ``outputs`` (logits for classification) against ``targets``."""
        return task_loss_function(self.loss)(targets, outputs)

    def make_optimizer(self) -> Any:
        """The Keras optimizer that applies this rule's updates."""
        return build_optimizer(self.optimizer or self.hparams.optimizer, self.hparams)

    def optimizer_for(self, model: MeasuredModel) -> Any:
        """:meth:`make_optimizer`'s optimizer set up for ``model`` as training uses it, to hand to
        :meth:`make_train_step`: weight decay on the forward kernels only (:func:`restrict_weight_decay`), and
        its slots built for the model's trainable variables. Slots created inside a step's first trace
        instead make TensorFlow trace the step twice, which costs seconds on a large network."""
        optimizer = self.make_optimizer()
        restrict_weight_decay(optimizer, model)
        optimizer.build(model.trainable_variables)
        return optimizer

    def feedback_gradient(self, layer: Any, layer_input: Any) -> Any:
        """The update signal (a gradient, descended by the optimizer) for a learned feedback kernel.

        Only rules with ``feedback = "learned"`` implement it, as one closed-form expression per layer (no
        second tape over the network); tests check it against autodiff of the rule's local loss.
        """
        raise NotImplementedError(f"rule {self.name!r} learns feedback kernels but has no feedback_gradient")

    def make_train_step(self, model: MeasuredModel, optimizer: Any) -> Callable[[Any, Any], Any]:
        """Return a compiled ``step(x, y) -> task loss`` that applies one update to ``model``."""
        layers = model.measured_layers
        learned = [layer.feedback_kernel for layer in layers if self.feedback == "learned"]
        forward_variables = [v for v in model.trainable_variables if not any(v is b for b in learned)]

        @tf.function(reduce_retracing=True, autograph=False)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits, layer_inputs, _ = model.forward_with_activity(x, training=True)
                task_loss = self.task_loss(y, logits)
            gradients = tape.gradient(task_loss, forward_variables)
            if learned:
                gradients += [self.feedback_gradient(layer, inputs) for layer, inputs in zip(layers, layer_inputs)]
            # Keras does not order its variable updates after reads made outside the tape (the feedback
            # kernels' update signals read W and B): without this, an update can land first, at random.
            with tf.control_dependencies(gradients):
                optimizer.apply(gradients, forward_variables + learned)
            return task_loss

        return train_step

    def reseed(self, seed: int) -> None:
        """Prepare the step this rule built for another run, whose rule seed is ``seed``.

        The trainer reuses a traced step, and the rule object it closes over, for runs that differ only in
        seeds and learning rate (the model and optimizer are re-initialised separately). Rules whose step
        holds state of its own (random generators, auxiliary weights) override this to put that state
        where a fresh build with ``seed`` would; see :meth:`reuses_compiled_step`.
        """
        self.seed = seed

    @classmethod
    def reuses_compiled_step(cls) -> bool:
        """Whether a traced step can serve later runs: the default step holds no state of its own, and a
        rule with a step of its own opts in by overriding :meth:`reseed`."""
        return cls.make_train_step is LearningRule.make_train_step or cls.reseed is not LearningRule.reseed

    def kernel_update_signals(self, model: MeasuredModel, x: Any, y: Any) -> list:
        """The signal the rule hands its optimizer for each measured layer's kernel on batch (x, y).

        Used to measure rule health (the angle to the true gradient), never to train: it runs the network
        in inference mode and must leave every variable and random state of the run untouched. The
        default differentiates the task loss through the layers' feedback paths, as the default step does;
        rules with their own step override it.
        """
        with tf.GradientTape() as tape:
            logits, _, _ = model.forward_with_activity(x, training=False)
            loss = self.task_loss(y, logits)
        return tape.gradient(loss, [layer.kernel for layer in model.measured_layers])

    #: architectures the rule can train, or None for all; see :meth:`unsupported_reason`
    architectures: ClassVar[tuple[str, ...] | None] = None
    #: why the rule is limited to ``architectures`` (shown when a sweep asks for another)
    architecture_note: ClassVar[str] = ""

    @classmethod
    def unsupported_reason(cls, arch: str) -> str | None:
        """None if the rule can train ``arch``, else a one-line reason (checked before any training)."""
        if cls.architectures is None or arch in cls.architectures:
            return None
        note = f" ({cls.architecture_note})" if cls.architecture_note else ""
        return f"it supports only {', '.join(cls.architectures)}{note}"

    @classmethod
    def hyperparameter_table(cls) -> list[tuple[str, object, str]]:
        """``(name, default, description)`` for each hyperparameter, for ``lrid rules``."""
        return [
            (name, field.default, field.description or "") for name, field in cls.Hyperparameters.model_fields.items()
        ]
