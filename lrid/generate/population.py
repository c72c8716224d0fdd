"""Population training: K runs of one MLP shape trained together, one compiled step for all of them.

A sweep is mostly small networks whose single-network step leaves the machine idle between ops. Runs that
share architecture, layer shapes, task, batch size, step count, recording schedule and rule (see
:func:`population_key`) are trained as one :class:`~lrid.models.population.PopulationMLP`: every kernel is
stacked to [K, in, out] and one batched matmul serves every member. Each member keeps its own seeds (model
initialisation, data order, probe), its own hyperparameters (learning rate, momentum, weight decay, Adam's
betas and epsilon, IA's coefficients, the learning-rate schedule) and its own optimizer state.

Every member is recorded and written exactly as a solo run of its spec (:func:`lrid.generate.trainer.train_run`)
would be: same run id, rows, statuses and manifest fields, plus a ``population`` field saying how it was
trained. Members start from the solo path's initial weights and batches; the batched kernels sum in another
order than the solo ones, so observables agree to float32 rounding grown over training (tests/test_population.py
states the tolerance), not bit for bit.

Supported: the MLP with rules sgd, sgdm, adam, fa, ss, ia, np and np_wn (any of their optimizers),
cross-entropy or MSE tasks, without degraded views. One population holds one rule and one optimizer. Node
perturbation draws each member's noise from the member's own generator, seeded as the solo rule seeds it.
Conv nets and target propagation train solo (:func:`supports_population` says why for a spec).

Populations that differ only in batch size and budget share one :func:`step_key`: they reuse one trace
(traced for any batch size), and :func:`population_chains` sends them to one pool worker in turn. The
recorder, the evaluation's logits and the finiteness check are functions of the stacked weights, traced once
per shape for the populations of every rule in a process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from lrid.config import RunSpec
from lrid.lazy_import import tf

if TYPE_CHECKING:
    from lrid.generate.trainer import RunResult
    from lrid.models.population import PopulationMLP
    from lrid.rules.base import LearningRule
    from lrid.tasks.base import Task

#: rules a population can train: those whose step is "forward, then a backward signal" (see PopulationStep)
POPULATION_RULES = ("sgd", "sgdm", "adam", "fa", "ss", "ia", "np", "np_wn")


def supports_population(spec: RunSpec) -> str | None:
    """None if ``spec`` can train as a population member, else a one-line reason it trains solo."""
    if spec.model.arch != "mlp":
        return f"architecture {spec.model.arch!r} trains solo (populations stack MLPs only)"
    if spec.rule.name not in POPULATION_RULES:
        return f"rule {spec.rule.name!r} trains solo (populations support {', '.join(POPULATION_RULES)})"
    if spec.observe.views:
        return "runs with degraded views train solo"
    return None


def population_key(spec: RunSpec) -> str | None:
    """What members of one population share, or None for a spec that trains solo.

    Everything but the seeds, the rule's hyperparameters (other than the optimizer a composable rule
    picks) and the learning-rate schedule: those vary per member.
    """
    shared_step = step_key(spec)
    if shared_step is None:
        return None
    return json.dumps([shared_step, spec.train.epochs, spec.train.batch_size])


def step_key(spec: RunSpec) -> str | None:
    """What a population's compiled step, recorder and probes depend on: its :func:`population_key` but the
    batch size and the number of steps, so that populations differing only in those share the traces."""
    if supports_population(spec) is not None:
        return None
    optimizer = spec.rule.hparams.get("optimizer", spec.rule.name)
    observe = spec.observe.model_dump(mode="json")
    observe.pop("probe_seed")
    return json.dumps(
        [spec.task.model_dump(mode="json"), spec.model.model_dump(mode="json"), spec.rule.name, optimizer, observe],
        sort_keys=True,
    )


def group_populations(specs: list[RunSpec], size: int, spread: int = 1) -> list[list[RunSpec]]:
    """``specs`` split into populations of at most ``size`` members sharing a :func:`population_key`; a spec
    that trains solo (or ``size`` 1) is a population of one. Groups keep the specs' order.

    ``spread`` (a pool's workers): while there are fewer work units than that, the largest population is
    halved, so that a few large populations do not leave workers idle.
    """
    groups: dict[str, list[RunSpec]] = {}
    singles = []
    for spec in specs:
        key = population_key(spec) if size > 1 else None
        if key is None:
            singles.append([spec])
        else:
            groups.setdefault(key, []).append(spec)
    populations = [
        members[start : start + size] for members in groups.values() for start in range(0, len(members), size)
    ]
    while len(populations) + len(singles) < spread and any(len(p) > 1 for p in populations):
        largest = max(range(len(populations)), key=lambda index: len(populations[index]))
        members = populations.pop(largest)
        half = -(-len(members) // 2)
        populations[largest:largest] = [members[:half], members[half:]]
    return singles + populations


def population_chains(populations: list[list[RunSpec]], workers: int) -> list[list[list[RunSpec]]]:
    """``populations`` (of two or more runs) in chains that one worker trains in turn: those sharing a
    :func:`step_key` chain together, as the later ones reuse the first one's traces. While there are fewer
    chains than ``workers``, the longest is halved; the longest chains come first."""
    chains: dict[str, list[list[RunSpec]]] = {}
    for population in populations:
        chains.setdefault(str(step_key(population[0])), []).append(population)
    ordered = list(chains.values())
    while len(ordered) < workers and any(len(chain) > 1 for chain in ordered):
        longest = ordered.pop(max(range(len(ordered)), key=lambda index: len(ordered[index])))
        ordered += [longest[: len(longest) // 2], longest[len(longest) // 2 :]]
    return sorted(ordered, key=lambda chain: -sum(map(len, chain)))


def train_population(specs: list[RunSpec], fall_back: bool = True) -> list[RunResult]:
    """Train ``specs`` (one :func:`population_key`) together; a :class:`~lrid.generate.trainer.RunResult` each.

    A member that goes non-finite is recorded as diverged at its step, as a solo run is, and masked out;
    the others go on. If the population as a whole fails (an exception), each member is trained solo
    instead when ``fall_back`` is set, else every member is reported failed with the error.
    """
    from lrid.generate.trainer import RunResult, _versions, train_run

    if len(specs) == 1:
        return [train_run(specs[0])]  # a population of one is a solo run, bit for bit
    keys = {population_key(spec) for spec in specs}
    if None in keys or len(keys) > 1:
        raise ValueError("a population's specs must share one population key (see group_populations)")
    started = time.perf_counter()
    try:
        outcomes, rows = _train_population(specs)
    except Exception as error:  # noqa: BLE001 - a failed population falls back, or is recorded
        if fall_back:
            return [train_run(spec) for spec in specs]
        wall = time.perf_counter() - started
        return [
            RunResult(
                None,
                {
                    "run_id": spec.run_id,
                    "spec": spec.model_dump(mode="json"),
                    "versions": _versions(),
                    "status": "failed",
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc(limit=5),
                    "wall_time_s": wall / len(specs),
                },
            )
            for spec in specs
        ]
    wall = time.perf_counter() - started
    identity = hashlib.sha256(",".join(spec.run_id for spec in specs).encode()).hexdigest()[:16]
    results = []
    for index, (spec, outcome, frame) in enumerate(zip(specs, outcomes, rows, strict=True)):
        manifest = {
            "run_id": spec.run_id,
            "spec": spec.model_dump(mode="json"),
            "versions": _versions(),
            **outcome,
            # a member's share of the population's time, so per-run costs stay comparable with solo runs
            "wall_time_s": wall / len(specs),
            "population": {"id": identity, "size": len(specs), "member": index, "wall_time_s": wall},
        }
        results.append(RunResult(frame, manifest))
    return results


class StackedOptimizer:
    """SGD, SGD with momentum or Adam over stacked variables, with per-member settings.

    Each member's update is the one :func:`lrid.rules.base.build_optimizer`'s Keras optimizer makes:
    decoupled weight decay ``w <- w - w * wd * lr`` on the forward kernels first, then the update, Adam's in
    the same float32 operations and order; SGD's with the learning rate already in the gradient (see
    :meth:`scale`), which rounds ``lr * g`` at another point. Every setting is a [K] tensor, so members
    differ in all of them.
    """

    def __init__(self, kind: str, hparams: list, variables: list, decayed: list) -> None:
        if kind not in ("sgd", "sgdm", "adam"):
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        self.size = len(hparams)
        self.variables = variables
        self.decayed = [any(variable is d for d in decayed) for variable in variables]
        names = {
            "sgd": [],
            "sgdm": ["momentum"],
            "adam": ["beta_1", "beta_2", "one_minus_beta_1", "one_minus_beta_2", "epsilon"],
        }[kind]
        # Plain and momentum SGD updates are linear in ``lr * g``: the step scales each member's loss by its
        # learning rate (a [K] product, carried through backprop on batch-sized signals), so no
        # kernel-sized product is formed, and the update is one fused in-place op per variable.
        self.folds_learning_rate = kind in ("sgd", "sgdm")
        # Whether any member decays, and whether one momentum serves all (the usual case, which the fused
        # Keras-momentum op applies), are part of the step's trace.
        self.any_decay, self.shared_momentum = self.trace_key(kind, hparams)
        # Variables, not constants: a cached step serves later populations with other settings.
        self.settings = {
            name: tf.Variable(tf.zeros([self.size]), trainable=False)
            for name in ["learning_rate", "weight_decay", *names]
        }
        self.learning_rate = self.settings["learning_rate"]
        slots = {"sgd": 0, "sgdm": 1, "adam": 2}[kind]
        self.slots = [[tf.Variable(tf.zeros_like(v), trainable=False) for _ in range(slots)] for v in variables]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.reset(hparams)

    @staticmethod
    def trace_key(kind: str, hparams: list) -> tuple[bool, bool]:
        """What of the members' settings is fixed in a step's trace: whether any decays (Keras skips decay at
        0), and whether one momentum serves all. A cached step serves only populations with the same key."""
        return bool(any(h.weight_decay for h in hparams)), kind == "sgdm" and len({h.momentum for h in hparams}) == 1

    def reset(self, hparams: list) -> None:
        """Start afresh with members' settings ``hparams`` (as many as the population's members): zero state."""
        if len(hparams) != self.size or self.trace_key(self.kind, hparams) != (self.any_decay, self.shared_momentum):
            raise ValueError("a stacked optimizer is reset with settings of its own size, decay and momenta")
        values = {
            name: [getattr(h, "lr" if name == "learning_rate" else name, 0.0) for h in hparams]
            for name in self.settings
        }
        if self.kind == "adam":
            # Keras multiplies by the Python float (1 - beta), rounded once to float32.
            values["one_minus_beta_1"] = [1 - h.beta_1 for h in hparams]
            values["one_minus_beta_2"] = [1 - h.beta_2 for h in hparams]
        for name, variable in self.settings.items():
            variable.assign(np.asarray(values[name], dtype=np.float64).astype(np.float32))
        for slots in self.slots:
            for slot in slots:
                slot.assign(tf.zeros_like(slot))
        self.iterations.assign(0)

    def _member(self, values, variable):
        """A [K] setting shaped to broadcast against ``variable`` ([K, ...])."""
        return tf.reshape(values, [self.size] + [1] * (len(variable.shape) - 1))

    def scale(self) -> Any:
        """[K] factors the step multiplies each member's loss (and local updates) by before ``apply``: the
        learning rates where :attr:`folds_learning_rate`, else ones."""
        return self.learning_rate if self.folds_learning_rate else tf.ones([self.size])

    def apply(self, gradients: Any) -> None:
        """Apply one update with ``gradients`` (one per variable, stacked like it), each member's already
        multiplied by its :meth:`scale`."""
        if self.any_decay:
            for variable, decayed in zip(self.variables, self.decayed):
                if decayed:
                    variable.assign_sub(
                        variable
                        * self._member(self.settings["weight_decay"], variable)
                        * self._member(self.learning_rate, variable)
                    )
        if self.kind == "adam":
            local_step = tf.cast(self.iterations + 1, tf.float32)
            beta_1_power = tf.pow(self.settings["beta_1"], local_step)
            beta_2_power = tf.pow(self.settings["beta_2"], local_step)
            alpha = self.learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        one = tf.constant(1.0)
        for variable, gradient, slots in zip(self.variables, gradients, self.slots):
            if self.kind == "sgd":
                tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=one, delta=gradient)
            elif self.shared_momentum:
                (velocity,) = slots
                tf.raw_ops.ResourceApplyKerasMomentum(
                    var=variable.handle,
                    accum=velocity.handle,
                    lr=one,
                    grad=gradient,
                    momentum=self.settings["momentum"][0],
                    use_nesterov=False,
                )
            elif self.kind == "sgdm":
                (velocity,) = slots
                velocity.assign(velocity * self._member(self.settings["momentum"], variable) - gradient)
                variable.assign_add(velocity)
            else:
                m, v = slots
                m.assign_add((gradient - m) * self._member(self.settings["one_minus_beta_1"], variable))
                v.assign_add((tf.square(gradient) - v) * self._member(self.settings["one_minus_beta_2"], variable))
                variable.assign_sub(
                    (m * self._member(alpha, variable))
                    / (tf.sqrt(v) + self._member(self.settings["epsilon"], variable))
                )
        self.iterations.assign_add(1)

    def freeze(self, member: int) -> None:
        """Stop ``member``'s updates for good: zero learning rate and optimizer state (masking a diverged member)."""
        self.learning_rate.assign(_zero_member(self.learning_rate, member))
        for slots in self.slots:
            for slot in slots:
                slot.assign(_zero_member(slot, member))


def _zero_member(variable, member: int):
    """``variable`` ([K, ...]) with member ``member``'s slice set to zero, whatever it held (NaN included)."""
    keep = np.ones(variable.shape[0], dtype=bool)
    keep[member] = False
    shaped = tf.reshape(tf.constant(keep), [-1] + [1] * (len(variable.shape) - 1))
    return tf.where(shaped, variable, tf.zeros_like(variable))


def batched_task_loss(loss: str, targets: Any, outputs: Any) -> Any:
    """Each member's task loss [K] of ``outputs`` [K, batch, outputs] against ``targets`` [K, batch, ...],
    averaged over the batch as :func:`lrid.rules.base.task_loss_function` averages it."""
    if loss == "cross_entropy":
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(targets, tf.int64), logits=outputs)
    elif loss == "mse":
        per_example = tf.reduce_mean(tf.square(tf.cast(targets, outputs.dtype) - outputs), axis=-1)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return tf.reduce_sum(per_example, axis=1) / tf.cast(tf.shape(per_example)[1], per_example.dtype)


def _member_angles(a, b):
    """Per member, the angle in degrees between ``a[k]`` and ``b[k]`` flattened (NaN if either is zero), as
    :func:`lrid.generate.health.angle_degrees` measures it."""
    size = tf.shape(a)[0]
    a = tf.reshape(tf.cast(a, tf.float32), [size, -1])
    b = tf.reshape(tf.cast(b, tf.float32), [size, -1])
    norms = tf.norm(a, axis=1) * tf.norm(b, axis=1)
    cosine = tf.clip_by_value(tf.reduce_sum(a * b, axis=1) / norms, -1.0, 1.0)
    degrees = tf.acos(cosine) * (180.0 / np.pi)
    return tf.where(norms > 0, degrees, tf.constant(float("nan")))


def _observe_members(activations: tuple, kernels: list, biases: list, probe: Any) -> Any:
    """Every member's [n_layers, 45] observables on ``probe`` [K, P, ...]: [K, n_layers, 45], for the MLPs
    with these stacked weights and hidden ``activations``."""
    from lrid.models.population import exact_forward
    from lrid.observables import FUNCTIONS
    from lrid.observables.statistics import apply_function, describe_steps

    size = kernels[0].shape[0]
    projections: list = []
    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
        tape.watch(probe)  # so that the tape records the forward pass, projections included
        layer_outputs = exact_forward(kernels, biases, activations, probe, projections)
    rows = []
    for kernel, projection, layer_output in zip(kernels, projections, layer_outputs):
        # The activity change (lrid.observables.measures.activity_change) of a dense layer y = f(x W + b):
        # sum_ij dy_i/dx_j = sum_i f'(z_i) sum_j W_ji, so the kernel's column sums weigh f' at the
        # forward pass's own pre-activations: no second pass through the layer and no [in, out] product.
        kernel = tf.convert_to_tensor(kernel)
        column_sums = tf.broadcast_to(tf.reduce_sum(kernel, axis=1)[:, None, :], tf.shape(layer_output))
        weighted = tape.gradient(layer_output, projection, output_gradients=column_sums)
        n_outputs = tf.cast(tf.shape(layer_output)[2], tf.float32)
        change = tf.reduce_sum(weighted, axis=2) / n_outputs  # [K, P]
        rows.append(
            tf.concat(
                [
                    describe_steps(tf.reshape(kernel, [size, 1, -1])),
                    describe_steps(layer_output),
                    tf.stack([tf.reduce_mean(apply_function(change, f), axis=1) for f in FUNCTIONS], axis=1),
                ],
                axis=1,
            )
        )
    del tape
    return tf.stack(rows, axis=1)


@functools.cache
def _shared_traces(activations: tuple) -> tuple[Any, Any, Any]:
    """The recorder, the logits and the finiteness check of populations whose layers use ``activations``, as
    tf.functions of the stacked weights: the populations of every rule in a worker share one trace of each
    per shape, where a trace per rule cost seconds of a sweep (the recorder's graph is large)."""
    from lrid.models.population import members_finite, members_logits

    return (
        tf.function(functools.partial(_observe_members, activations), autograph=False),
        tf.function(functools.partial(members_logits, activations), autograph=False),
        tf.function(members_finite, autograph=False),
    )


class PopulationStep:
    """A population's compiled train step, recorder, health probe and evaluation, for one rule."""

    def __init__(self, model: PopulationMLP, rules: list, loss: str, seeds: list[int]) -> None:
        from lrid.models.layers import scheme_std
        from lrid.rules.node_perturbation import NodePerturbation

        self.model = model
        self.loss = loss
        self.learned = model.feedback == "learned"
        self.perturbing = isinstance(rules[0], NodePerturbation)
        if self.perturbing:
            self.weight_norm = rules[0].weight_norm
            # the forward kernels' init std, at which np_wn holds every unit's incoming weights
            self.kernel_rms = [
                scheme_std(kernel.shape[1:], model.init_scheme) * model.init_scale for kernel in model.kernels
            ]
            self.sigma, self.two_sigma_squared = (
                tf.Variable(tf.zeros([model.size]), trainable=False) for _ in range(2)
            )
            # One noise stream per member, and one for its health probe, as each solo run has.
            self.generators = [tf.random.Generator.from_seed(seed) for seed in seeds]
            self.health_generators = [tf.random.Generator.from_seed(seed + 1) for seed in seeds]
            self._set_perturbation(rules, seeds)
        variables = model.forward_variables + (model.feedback_kernels if self.learned else [])
        kind = rules[0].optimizer or rules[0].hparams.optimizer
        # As restrict_weight_decay: only forward kernels decay.
        self.optimizer = StackedOptimizer(kind, [rule.hparams for rule in rules], variables, model.kernels)
        if self.learned:
            self.ia_alpha, self.ia_two_beta, self.ia_two_gamma = (
                tf.Variable(tf.zeros([model.size, 1, 1]), trainable=False) for _ in range(3)
            )
            self._set_coefficients(rules)
        # No AutoGraph: the steps have no tensor-dependent Python control flow, and converting their
        # source is most of what tracing them costs.
        self.train_step = tf.function(self._train_step, autograph=False)
        self.angles = tf.function(self._angles, autograph=False)
        observe, logits, finite = _shared_traces(tuple(model.activations))
        #: every member's [n_layers, 45] observables on a probe [K, P, ...]: [K, n_layers, 45]
        self.observe = functools.partial(observe, model.kernels, model.biases)
        #: every member's outputs [K, batch, outputs] for one batch [batch, ...] shared by all members
        self.logits = functools.partial(logits, model.kernels, model.biases)
        #: [K] booleans: whether each member's variables are all finite
        self.members_finite = functools.partial(finite, model.variables)

    def compiled(self, name: str, x: Any, y: Any) -> Any:
        """The trace of ``train_step`` or ``angles`` for batches like ``x``, ``y`` of any batch size, called
        directly: populations that differ only in batch size share it."""

        def any_batch(tensor):
            return tf.TensorSpec([tensor.shape[0], None, *tensor.shape[2:]], tensor.dtype)

        return getattr(self, name).get_concrete_function(any_batch(x), any_batch(y))

    def _set_coefficients(self, rules) -> None:
        # Python-float products first, rounded once, as the solo rule's expressions round them.
        for variable, values in (
            (self.ia_alpha, [rule.hparams.alpha for rule in rules]),
            (self.ia_two_beta, [2.0 * rule.hparams.beta for rule in rules]),
            (self.ia_two_gamma, [2.0 * rule.hparams.gamma for rule in rules]),
        ):
            variable.assign(np.asarray(values, dtype=np.float64).astype(np.float32)[:, None, None])

    def _set_perturbation(self, rules, seeds) -> None:
        self.sigma.assign(np.asarray([rule.hparams.sigma for rule in rules], dtype=np.float64).astype(np.float32))
        # (2 sigma^2) as the solo rule's Python expression rounds it
        self.two_sigma_squared.assign(
            np.asarray([2.0 * rule.hparams.sigma**2 for rule in rules], dtype=np.float64).astype(np.float32)
        )
        for generator, health, seed in zip(self.generators, self.health_generators, seeds):
            generator.reset_from_seed(seed)
            health.reset_from_seed(seed + 1)

    def reset(self, rules: list, initial_weights: list, seeds: list[int]) -> None:
        """Serve another population of the same key and size: its members' weights, settings, fresh state."""
        self.model.load(initial_weights)
        self.optimizer.reset([rule.hparams for rule in rules])
        if self.learned:
            self._set_coefficients(rules)
        if self.perturbing:
            self._set_perturbation(rules, seeds)

    def _perturbation_gradients(self, x, y, generators, scale=None):
        """Node perturbation's estimates (kernels, then biases) and the clean logits, for every member
        (see lrid.rules.node_perturbation.model_perturbation_gradients), each member's noise from its own
        generator; times ``scale`` ([K]) if given, applied to the per-example coefficients."""
        model = self.model
        logits, layer_inputs, layer_outputs = model.forward_with_activity(x, exact_gradient=True)
        noise = [
            tf.stack(
                [
                    generator.normal(tf.shape(output)[1:], stddev=self.sigma[member], dtype=tf.float32)
                    for member, generator in enumerate(generators)
                ]
            )
            for output in layer_outputs
        ]
        noisy_logits, _, _ = model.forward_with_activity(x, exact_gradient=True, perturbations=noise)
        if self.loss == "mse":
            prediction, noisy_prediction, targets = logits, noisy_logits, tf.cast(y, tf.float32)
        else:
            prediction, noisy_prediction = tf.nn.softmax(logits), tf.nn.softmax(noisy_logits)
            targets = tf.one_hot(tf.cast(y, tf.int32), logits.shape[-1])
        change = (noisy_prediction - prediction) * (noisy_prediction + prediction - 2.0 * targets)
        coefficient = (
            tf.reduce_sum(tf.reshape(change, [model.size, tf.shape(change)[1], -1]), axis=2)
            / self.two_sigma_squared[:, None]
        )
        if scale is not None:
            coefficient = coefficient * scale[:, None]
        batch_size = tf.cast(tf.shape(x)[1], tf.float32)
        weighted = [coefficient[:, :, None] * xi / batch_size for xi in noise]
        kernels = [tf.matmul(tf.stop_gradient(h), w, transpose_a=True) for h, w in zip(layer_inputs, weighted)]
        return kernels + [tf.reduce_sum(w, axis=1) for w in weighted], logits

    def _feedback_gradient(self, index, layer_input, forward_projection, scale):
        """IA's dR/dB for every member (see InformationAlignment.feedback_gradient), batched and times
        ``scale`` ([K, 1, 1], the optimizer's), applied to the coefficients rather than to the result; ``x W``
        is the forward pass's own (the same product the solo rule recomputes)."""
        inputs = tf.stop_gradient(layer_input)
        forward_projection = tf.stop_gradient(forward_projection)
        feedback = tf.stop_gradient(tf.convert_to_tensor(self.model.feedback_kernels[index]))
        reconstruction = tf.matmul(forward_projection, feedback, transpose_b=True)
        signal = (scale * self.ia_two_beta) * reconstruction - (scale * self.ia_alpha) * inputs
        batch_size = tf.cast(tf.shape(inputs)[1], inputs.dtype)
        return (
            tf.matmul(signal, forward_projection, transpose_a=True) / batch_size
            + (scale * self.ia_two_gamma) * feedback
        )

    def _train_step(self, x, y):
        if self.perturbing:
            return self._perturbation_step(x, y)
        variables = self.model.forward_variables
        scale = self.optimizer.scale()
        projections: list = []
        with tf.GradientTape() as tape:
            logits, layer_inputs, _ = self.model.forward_with_activity(x, projections=projections)
            losses = batched_task_loss(self.loss, y, logits)
            # members are independent: d total / d member k = scale_k d loss_k
            total = tf.reduce_sum(losses * scale)
        gradients = tape.gradient(total, variables)
        if self.learned:
            gradients += [
                self._feedback_gradient(index, inputs, projection, scale[:, None, None])
                for index, (inputs, projection) in enumerate(zip(layer_inputs, projections))
            ]
        with tf.control_dependencies(gradients):
            self.optimizer.apply(gradients)
        return losses

    def _perturbation_step(self, x, y):
        gradients, logits = self._perturbation_gradients(x, y, self.generators, self.optimizer.scale())
        losses = batched_task_loss(self.loss, y, logits)
        with tf.control_dependencies([*gradients, losses]):
            self.optimizer.apply(gradients)
        if self.weight_norm:
            # after the update (the kernels' reads and writes are ordered by their variables)
            for kernel, rms in zip(self.model.kernels, self.kernel_rms):
                norms = tf.sqrt(tf.reduce_mean(tf.square(kernel), axis=1, keepdims=True))
                kernel.assign(kernel * (rms / tf.maximum(norms, 1e-30)))
        return losses

    def _angles(self, x, y):
        """Per member and layer: the update-vs-gradient angle, and the feedback-vs-weight angle ([K, L] each)."""
        model = self.model
        with tf.GradientTape() as tape:
            logits, _, _ = model.forward_with_activity(x, exact_gradient=True)
            loss = tf.reduce_sum(batched_task_loss(self.loss, y, logits))
        true_gradients = tape.gradient(loss, model.kernels)
        if self.perturbing:
            signals = self._perturbation_gradients(x, y, self.health_generators)[0][: len(model.kernels)]
        elif model.feedback is None:
            signals = true_gradients  # backprop's signal is the gradient: the same pass again gives the same bits
        else:
            with tf.GradientTape() as tape:
                logits, _, _ = model.forward_with_activity(x)
                loss = tf.reduce_sum(batched_task_loss(self.loss, y, logits))
            signals = tape.gradient(loss, model.kernels)
        update = tf.stack([_member_angles(s, g) for s, g in zip(signals, true_gradients)], axis=1)
        if model.feedback is None:
            return update, tf.zeros([model.size, 0])
        feedback = tf.stack(
            [_member_angles(model.feedback_matrix(i), model.kernels[i]) for i in range(len(model.kernels))], axis=1
        )
        return update, feedback


# A solo run's initial weights per (model spec, task, feedback, seed): sweeps repeat seeds across rules and
# hyperparameters, and drawing a network's weights costs milliseconds. Bounded in floats.
_INITIAL: dict[str, list] = {}
_INITIAL_FLOATS_LIMIT = 16_000_000


def _initial_weights(spec: RunSpec, task, feedback) -> list[tuple]:
    """``(name, kernel, bias, feedback kernel or None)`` per layer, as a solo run of ``spec`` starts."""
    from lrid.models import ARCHITECTURES

    key = json.dumps(
        [spec.model.model_dump(mode="json"), spec.task.model_dump(mode="json"), feedback, spec.train.model_seed],
        sort_keys=True,
    )
    weights = _INITIAL.pop(key, None)
    if weights is None:
        # The network's layers, unbuilt: their seeded initialisers give a built model's weights, and building
        # one costs several times as much.
        model = ARCHITECTURES[spec.model.arch].builder(spec.model, task.n_classes, feedback, spec.train.model_seed)
        weights = model.initial_weights(task.input_shape)
    _INITIAL[key] = weights

    def floats(entry):
        return sum(array.size for layer in entry for array in layer[1:] if array is not None)

    while len(_INITIAL) > 1 and sum(floats(entry) for entry in _INITIAL.values()) > _INITIAL_FLOATS_LIMIT:
        _INITIAL.pop(next(iter(_INITIAL)))
    return weights


def build_population(specs: list[RunSpec]) -> tuple[Task, list[LearningRule], PopulationStep, Callable[[int], Any]]:
    """``(task, rules, step, batches)`` for a population of ``specs`` (one :func:`population_key`): the
    members' rule objects, their :class:`PopulationStep` with each member's initial weights loaded, and
    a function from an epoch to its steps' stacked training batches."""
    from lrid.generate.trainer import rule_seed
    from lrid.models.population import PopulationMLP
    from lrid.rules import get_rule
    from lrid.tasks import get_task

    first = specs[0]
    task = get_task(first.task.name, first.task.data_dir, first.task.image_size, **first.task.options)
    rule_class = get_rule(first.rule.name)
    seeds = [rule_seed(spec) for spec in specs]
    rules = [rule_class(spec.rule.hparams, seed=seed, loss=task.loss) for spec, seed in zip(specs, seeds)]
    solo = [_initial_weights(spec, task, rule_class.feedback) for spec in specs]
    # epoch -> each step's (x [K, batch, ...], y [K, batch, ...]): every member's own batch, stacked
    batches = functools.partial(
        task.stacked_epoch_batches, batch_size=first.train.batch_size, data_seeds=[s.train.data_seed for s in specs]
    )
    optimizer = rules[0].optimizer or rules[0].hparams.optimizer
    key = json.dumps(
        [step_key(first), len(specs), StackedOptimizer.trace_key(optimizer, [rule.hparams for rule in rules])]
    )
    step = _STEPS.pop(key, None)
    if step is not None:
        step.reset(rules, solo, seeds)
    else:
        widths = [int(np.prod(task.input_shape)), *(layer[1].shape[1] for layer in solo[0])]
        model = PopulationMLP(
            widths,
            first.model.activation,
            rule_class.feedback,
            len(specs),
            [layer[0] for layer in solo[0]],
            first.model.init_scale,
            first.model.init,
        )
        model.load(solo)
        step = PopulationStep(model, rules, task.loss, seeds)
    _STEPS[key] = step  # most recently used last
    while len(_STEPS) > _STEPS_LIMIT:
        _STEPS.pop(next(iter(_STEPS)))
    return task, rules, step, batches


# Tracing a population's step, recorder and probes costs seconds, more than training a demo population:
# later populations of the same step key, size and optimizer trace key reuse them, whatever their batch
# size and budget (as the solo path reuses its compiled runs).
_STEPS: dict[str, PopulationStep] = {}
_STEPS_LIMIT = 4


def _train_population(specs: list[RunSpec]):
    """The training loop of :func:`train_population`: each member's outcome dict and observable rows."""
    from lrid.generate.trainer import _rows, _seed_global_generators, collapse_reason, recording_steps
    from lrid.observables.recorder import with_reach
    from lrid.observables.update_reach import ReachRecorder
    from lrid.schema import FULL_VIEW, depth_groups

    tf.config.experimental.enable_op_determinism()
    first = specs[0]
    _seed_global_generators(first.train.model_seed)
    size = len(specs)
    task, rules, step_fn, batches = build_population(specs)
    model = step_fn.model
    layer_names = model.layer_names
    probes = tf.constant(
        np.stack([task.probe_batch(spec.observe.probe_size, spec.observe.probe_seed) for spec in specs])
    )

    steps_per_epoch = task.steps_per_epoch(first.train.batch_size)
    total_steps = first.train.epochs * steps_per_epoch
    schedule = recording_steps(total_steps, first.observe.points)
    groups = depth_groups(len(layer_names))

    active = np.ones(size, dtype=bool)
    records: list[list] = [[] for _ in specs]
    status = ["complete"] * size
    diverged_at: list[int | None] = [None] * size
    steps_run = [0] * size
    final_loss = [float("nan")] * size
    first_loss = None
    recorded_losses: list[list] = [[None] for _ in specs]
    health: list[dict[str, list]] = [{"update_gradient_angle_deg": [], "feedback_weight_angle_deg": []} for _ in specs]
    interval_losses: list = []

    # Each member's own reach, as its solo run records it (the MLPs are chains).
    reach = [ReachRecorder() for _ in specs]

    def record(step):
        values = step_fn.observe(probes).numpy().astype(np.float64)
        values[~np.isfinite(values)] = np.nan
        kernels = [kernel.numpy() for kernel in model.kernels]
        for member in np.flatnonzero(active):
            member_reach = reach[member].record([kernel[member] for kernel in kernels])
            records[member].append((step, with_reach({FULL_VIEW: values[member]}, member_reach)))

    def log_health(angles, x, y):
        update, feedback = (t.numpy() for t in angles(x, y))
        for member in np.flatnonzero(active):
            health[member]["update_gradient_angle_deg"].append(_rounded(update[member]))
            health[member]["feedback_weight_angle_deg"].append(_rounded(feedback[member]))

    record(0)
    step, next_record = 0, 1
    train_step = None
    for epoch in range(first.train.epochs):
        if any(spec.train.lr_decay_epochs for spec in specs):
            rates = [
                spec.train.learning_rate(rule.hparams.lr, epoch) if active[k] else 0.0
                for k, (spec, rule) in enumerate(zip(specs, rules))
            ]
            step_fn.optimizer.learning_rate.assign(np.asarray(rates, dtype=np.float64).astype(np.float32))
        for x, y in batches(epoch):
            x, y = tf.constant(x), tf.constant(y)
            if train_step is None:
                train_step, angles = (step_fn.compiled(name, x, y) for name in ("train_step", "angles"))
                log_health(angles, x, y)  # the initial networks, on the first batch they train on
            loss_tensor = train_step(x, y)
            if first_loss is None:
                first_loss = loss_tensor.numpy()
            interval_losses.append(loss_tensor)
            step += 1
            if next_record < len(schedule) and step == schedule[next_record]:
                next_record += 1
                losses = loss_tensor.numpy()
                finite = step_fn.members_finite().numpy() & np.isfinite(losses)
                for member in map(int, np.flatnonzero(active)):
                    final_loss[member] = float(losses[member])
                    steps_run[member] = step
                    if not finite[member]:
                        status[member], diverged_at[member] = "diverged", step
                        active[member] = False
                        _mask(model, step_fn.optimizer, member)
                if not active.any():
                    break
                record(step)
                sums = tf.add_n(interval_losses).numpy()
                for member in map(int, np.flatnonzero(active)):
                    recorded_losses[member].append(float(sums[member]) / len(interval_losses))
                interval_losses = []
                log_health(angles, x, y)
        if not active.any():
            break

    metric = task.metric
    test_metrics = _evaluate(task, step_fn, size)
    outcomes, frames = [], []
    for member, spec in enumerate(specs):
        collapsed = None
        if status[member] == "complete" and first_loss is not None and len(recorded_losses[member]) > 1:
            collapsed = collapse_reason(
                metric, task.n_classes, test_metrics[member], float(first_loss[member]), recorded_losses[member][-1]
            )
            if collapsed:
                status[member] = "collapsed"
        recorded_steps = [s for s, _ in records[member]]
        log = health[member]
        outcomes.append(
            {
                "status": status[member],
                "diverged_at_step": diverged_at[member],
                "total_steps": total_steps,
                "steps_run": steps_run[member] if status[member] == "diverged" else step,
                "recorded_steps": recorded_steps,
                "recorded_train_loss": recorded_losses[member],
                "final_train_loss": final_loss[member],
                f"final_test_{metric}": test_metrics[member] if status[member] != "diverged" else None,
                **({"collapse_reason": collapsed} if collapsed else {}),
                "health": {
                    "layers": layer_names,
                    "steps": recorded_steps[: len(log["update_gradient_angle_deg"])],
                    "update_gradient_angle_deg": log["update_gradient_angle_deg"],
                    "feedback_weight_angle_deg": log["feedback_weight_angle_deg"]
                    if model.feedback is not None
                    else None,
                },
            }
        )
        frames.append(_rows(spec.run_id, records[member], layer_names, groups, steps_per_epoch))
    return outcomes, frames


def _mask(model, optimizer, member: int) -> None:
    """Take a diverged member out: finite zero weights that no longer change, so it cannot slow the others."""
    for variable in model.variables:
        variable.assign(_zero_member(variable, member))
    optimizer.freeze(member)


def _evaluate(task, step_fn, size: int) -> list[float]:
    """Each member's test metric, through the task's own evaluation (its batching and metric)."""
    cache: dict[bytes, np.ndarray] = {}  # per test batch: every member's outputs, computed once

    def all_logits(inputs):
        key = hashlib.sha256(np.ascontiguousarray(inputs).tobytes()).digest() + repr(inputs.shape).encode()
        if key not in cache:
            cache[key] = step_fn.logits(tf.constant(inputs)).numpy()
        return cache[key]

    return [task.evaluate(lambda inputs, k=member: all_logits(inputs)[k]) for member in range(size)]


def _rounded(values) -> list[float | None]:
    # As HealthProbe: JSON has no NaN, so an undefined angle is written as null.
    return [round(float(v), 3) if np.isfinite(v) else None for v in values]
