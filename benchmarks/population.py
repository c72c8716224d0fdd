"""Population training (issue #16): network-steps/s of K stacked digits MLPs against one network at a time.

The demo's digits MLP (64-128-128-10, tanh, batch 32). For each rule, the solo case is the loop ``lrid
generate`` runs for one network (the task's numpy batches into the rule's compiled step, no recording);
each K is the population loop (every member's batch, stacked, into one compiled step for K networks with
their own seeds and learning rates). Cases are timed alternately in one process (``harness.interleaved``);
network-steps/s counts every member's steps. A rule that populations do not support has its solo row
only, marked so. The end-to-end rows compare whole runs with 21 recordings (what ``lrid generate`` writes)
of K demo runs trained as one population against the same runs trained solo, and give recording's share
of a population run's wall time (the run with 21 points against the same with 2, extrapolated to 21 and
signed, as ``recording_overhead.recording_cost`` gives it); the last row times
``lrid generate pipelines/demo.yaml`` with and without ``--population 32`` on the same workers.

TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 VNNI and newer;
``lrid generate --population`` asks for them everywhere, solo sweeps keep TensorFlow's choice. By default
this process asks for them as populations do, so its solo rows run with them too (the title says which);
``--onednn tensorflow`` leaves TensorFlow's choice. The demo row runs the command line as a user does.

The conv table asks whether conv nets would pay as populations (lrid trains them solo): the digits conv
net (8x8x1 images) trained by sgdm, solo through lrid's compiled step, against K networks stacked in plain
TensorFlow four ways (grouped convolution, ``tf.vectorized_map``, patches times batched matmuls two ways),
each checked against the solo networks' forward pass and first step before it is timed.

    python benchmarks/population.py [--quick] [--threads 1] [--sizes 1,8,32,128] [--rules sgdm,fa,ia,np]
                                    [--conv-sizes 1,8,32] [--conv-batches 32,128] [--onednn population]
"""

from __future__ import annotations

import argparse
import math
import time

from harness import configure_tensorflow, interleaved, load_average, print_table, verdict, write_result
from recording_overhead import recording_cost
from workloads import DIGITS_MLP

# Targets from issue #16: network-steps/s relative to the solo path, per population size.
SPEEDUP_TARGETS = {32: 4.0, 128: 5.0}
RECORDING_SHARE_TARGET = 0.10
DEMO_TARGET = 2.5
# Learning rates spread across members, so the population is a sweep's, not K copies of one run.
LR_SPREAD = (0.5, 1.0, 2.0)
SOLO_REPEATS = 16


def member_specs(rule: str, size: int, epochs: int, points: int = 21, first_seed: int = 0):
    """``size`` demo runs of ``rule`` with distinct seeds and learning rates around the rule's default."""
    from lrid.rules import get_rule

    base = get_rule(rule).Hyperparameters().lr
    return [DIGITS_MLP.run_spec(rule, points=points, seed=first_seed + k, epochs=epochs,
                                lr=base * LR_SPREAD[k % len(LR_SPREAD)]) for k in range(size)]


def solo_step(rule: str, task, model: dict, batch_size: int, seed: int = 0, **hparams):
    """One network of ``model`` on ``task`` and ``rule``'s compiled step for it, traced on a first batch and
    called directly, as the trainer calls it (lrid.generate.trainer._direct_step); returns (model, step)."""
    from lrid.config import ModelSpec
    from lrid.models import build_model
    from lrid.rules import get_rule
    from lrid.rules.base import restrict_weight_decay

    rule_object = get_rule(rule)(hparams, seed=seed)
    network = build_model(ModelSpec(**model), task, feedback=rule_object.feedback, seed=seed)
    optimizer = rule_object.make_optimizer()
    restrict_weight_decay(optimizer, network)
    optimizer.build(network.trainable_variables)
    x, y = next(task.epoch_batches(0, batch_size, seed))
    return network, rule_object.make_train_step(network, optimizer).get_concrete_function(x, y)


def solo_block(rule: str, epochs: int):
    """One network's training loop, as the trainer runs it (task batches into the compiled step), run
    :data:`SOLO_REPEATS` times: one network's epochs take a few tens of milliseconds, too short to time
    steadily against the populations' blocks."""
    from lrid.tasks import get_task

    task = get_task(DIGITS_MLP.task_name)
    _, step = solo_step(rule, task, DIGITS_MLP.model, DIGITS_MLP.batch_size)

    def block():
        loss = None
        for _ in range(SOLO_REPEATS):
            for epoch in range(epochs):
                for x, y in task.epoch_batches(epoch, DIGITS_MLP.batch_size, 0):
                    loss = step(x, y)
        float(loss)

    return block


def population_block(rule: str, size: int, epochs: int):
    """The population loop for ``size`` members (stacked batches into one compiled step)."""
    import tensorflow as tf

    from lrid.generate.population import build_population

    _, _, population, batches = build_population(member_specs(rule, size, epochs))
    x, y = next(batches(0))
    step = population.compiled("train_step", tf.constant(x), tf.constant(y))

    def block():
        loss = None
        for epoch in range(epochs):
            for x, y in batches(epoch):
                loss = step(tf.constant(x), tf.constant(y))
        loss.numpy()

    return block


def end_to_end(rule: str, size: int, epochs: int) -> dict:
    """Whole runs (21 recordings, evaluation, manifests) of ``size`` demo runs: one population against solo."""
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = member_specs(rule, size, epochs)
    # Traced once on other runs of the same shape, as a sweep's first population traces for the later ones.
    for points in (21, 2):
        train_population(member_specs(rule, size, epochs, points, first_seed=1000), fall_back=False)
    train_run(member_specs(rule, 1, epochs, first_seed=1000)[0])
    started = time.perf_counter()
    train_population(specs, fall_back=False)
    population_s = time.perf_counter() - started
    started = time.perf_counter()
    train_population(member_specs(rule, size, epochs, points=2), fall_back=False)
    two_points_s = time.perf_counter() - started
    started = time.perf_counter()
    for spec in specs:
        train_run(spec)
    solo_s = time.perf_counter() - started
    share = recording_cost(population_s, two_points_s)[1]
    return {"rule": rule, "case": f"end to end, K={size}", "K": size, "population_s": round(population_s, 2),
            "solo_s": round(solo_s, 2), "speedup": round(solo_s / population_s, 2),
            "recording_share": round(share, 3), "target": f"recording <= {RECORDING_SHARE_TARGET:.0%} of a run"}


def demo_sweep(workers: int, size: int, runs: int | None) -> dict:
    """``lrid generate pipelines/demo.yaml`` (or its first ``runs`` runs) as a user runs it, solo and with
    ``--population size``, the same ``workers`` each: wall seconds (process start-up included) and the ratio.

    Also the fixed cost both pay (:func:`fixed_cost_sweep`, timed solo) and, for reading the ratio, the ratio of
    the seconds beyond it; the target is judged on the whole sweep."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from harness import REPO
    from sweep_throughput import subset_sweep

    with tempfile.TemporaryDirectory() as directory:
        demo = REPO / "pipelines" / "demo.yaml"
        spec, count = subset_sweep(demo, runs, Path(directory))
        fixed = fixed_cost_sweep(demo, workers, Path(directory))
        seconds = {}
        for name, sweep, extra in (("solo", spec, []), (f"K={size}", spec, ["--population", str(size)]),
                                   ("fixed", fixed, [])):
            command = [sys.executable, "-m", "lrid.cli", "generate", str(sweep), "--store", f"{directory}/{name}",
                       "--workers", str(workers), *extra]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            seconds[name] = time.perf_counter() - started
    solo_s, population_s, fixed_s = seconds["solo"], seconds[f"K={size}"], seconds["fixed"]
    return {"rule": "demo sweep", "case": f"{count} runs, {workers} workers, --population {size}", "K": size,
            "population_s": round(population_s, 1), "solo_s": round(solo_s, 1),
            "speedup": round(solo_s / population_s, 2), "fixed_s": round(fixed_s, 1),
            "beyond_fixed": round((solo_s - fixed_s) / (population_s - fixed_s), 2) if population_s > fixed_s else None,
            "target": f">= {DEMO_TARGET}x solo"}


def fixed_cost_sweep(spec, workers: int, directory):
    """``spec`` cut to one one-epoch run per worker of its first rule: what `lrid generate` costs a sweep
    beyond training (start-up, TensorFlow's import in every worker, a trace), which populations do not shorten."""
    import yaml

    document = yaml.safe_load(spec.read_text())
    rule, hparams = next(iter(document["rules"].items()))
    document["rules"] = {rule: {key: value[0] if isinstance(value, list) else value
                                for key, value in (hparams or {}).items()}}
    document["grid"] = {"model_seed": list(range(workers))}
    document.setdefault("train", {})["epochs"] = 1
    path = directory / "fixed.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


# The digits conv net (8x8x1 images) trained by sgdm: solo against K stacked networks in standalone
# TensorFlow formulations. lrid has no population conv net; these rows measure whether one would pay.
CONV_MODEL = {"arch": "convnet", "activation": "tanh"}
CONV_RULE = "sgdm"
CONV_FORMULATIONS = ("grouped", "vmap", "patches", "slices")
MIN_BLOCK_S = 0.3  # a timed block repeats whole epochs until it lasts at least this long
CHECKED_STEPS = 3  # members whose first training step is checked against their solo step


def conv_task():
    """The digits task as 8x8x1 images (``task.options.as_images``), as the conv net trains on it."""
    from lrid.tasks import get_task

    return get_task("digits", as_images=True)


def conv_lr(member: int) -> float:
    """Member ``member``'s learning rate, spread around sgdm's default like the MLP members'."""
    from lrid.rules import get_rule

    return get_rule(CONV_RULE).Hyperparameters().lr * LR_SPREAD[member % len(LR_SPREAD)]


def repeated(epoch, networks: int) -> tuple:
    """A block of whole calls of ``epoch`` (one epoch's steps; returns how many) lasting >= MIN_BLOCK_S
    once traced, and the network-steps it trains (``networks`` per step)."""
    epoch()
    started = time.perf_counter()
    steps = epoch()
    repeats = max(1, math.ceil(MIN_BLOCK_S / (time.perf_counter() - started)))

    def block():
        for _ in range(repeats):
            epoch()

    return block, networks * steps * repeats


def conv_solo_block(batch_size: int) -> tuple:
    """One conv net's training loop as the trainer runs it (task batches into the rule's compiled step)."""
    task = conv_task()
    _, step = solo_step(CONV_RULE, task, CONV_MODEL, batch_size)

    def epoch():
        steps, loss = 0, None
        for x, y in task.epoch_batches(0, batch_size, 0):
            loss, steps = step(x, y), steps + 1
        float(loss)
        return steps

    return repeated(epoch, 1)


def same_padding(size: int, stride: int, kernel: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one spatial axis."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_formulation(name: str):
    """``(pack, forward)`` of stacked formulation ``name``: ``pack(arrays, conv)`` turns one parameter of
    every member (a conv layer's if ``conv``, else the readout's) into the formulation's layout, and
    ``forward(params, x)`` maps stacked images [K, B, 8, 8, 1] to logits [K, B, 10].

    grouped: members' channels side by side, one convolution per layer with feature_group_count = K
    (inferred from the kernel's input depth); vmap: ``tf.vectorized_map`` of the solo network over members
    (pfor cannot vectorise a per-member filter, so each convolution falls back to a loop); patches and
    slices: members folded into the batch, 3x3 patches (``tf.image.extract_patches``, or nine strided slices
    of the padded maps) times each member's kernel in one batched matmul.
    """
    import numpy as np
    import tensorflow as tf

    from lrid.models.convnet import FILTERS

    stride, kernel = 2, 3

    def readout(h, params):  # h [K, B, features]
        return tf.matmul(h, params[-2]) + params[-1][:, None, :]

    if name == "grouped":
        def pack(arrays, conv):
            stacked = np.stack(arrays)
            if not conv:
                return stacked
            # Member-major channels: [K, 3, 3, in, out] -> [3, 3, in, K * out]; biases [K, out] -> [K * out].
            return np.transpose(stacked, (1, 2, 3, 0, 4)).reshape(*stacked.shape[1:4], -1) if stacked.ndim == 5 \
                else stacked.reshape(-1)

        def forward(params, x):
            members, batch = x.shape[0], x.shape[1]
            h = tf.reshape(tf.transpose(x, (1, 2, 3, 0, 4)), (batch, *x.shape[2:4], -1))
            for index in range(len(FILTERS)):
                h = tf.tanh(tf.nn.conv2d(h, params[2 * index], stride, "SAME") + params[2 * index + 1])
            return readout(tf.transpose(tf.reshape(h, (batch, members, -1)), (1, 0, 2)), params)
    elif name == "vmap":
        def pack(arrays, conv):
            return np.stack(arrays)

        def member(args):
            *params, h = args
            for index in range(len(FILTERS)):
                h = tf.tanh(tf.nn.conv2d(h, params[2 * index], stride, "SAME") + params[2 * index + 1])
            return tf.matmul(tf.reshape(h, (h.shape[0], -1)), params[-2]) + params[-1]

        def forward(params, x):
            return tf.vectorized_map(member, (*params, x), fallback_to_while_loop=True, warn=False)
    elif name in ("patches", "slices"):
        def pack(arrays, conv):
            stacked = np.stack(arrays)
            return stacked.reshape(len(arrays), -1, stacked.shape[-1]) if stacked.ndim == 5 else stacked

        def patches(h):  # [N, H, W, C] -> [N, H', W', 9 C] in a kernel's (row, column, channel) order
            if name == "patches":
                return tf.image.extract_patches(h, (1, kernel, kernel, 1), (1, stride, stride, 1), (1, 1, 1, 1), "SAME")
            height, width = h.shape[1], h.shape[2]
            rows, columns = -(-height // stride), -(-width // stride)
            h = tf.pad(h, ((0, 0), same_padding(height, stride, kernel), same_padding(width, stride, kernel), (0, 0)))
            return tf.concat([h[:, i:i + stride * (rows - 1) + 1:stride, j:j + stride * (columns - 1) + 1:stride, :]
                              for i in range(kernel) for j in range(kernel)], axis=-1)

        def forward(params, x):
            members, batch = x.shape[0], x.shape[1]
            h = tf.reshape(x, (members * batch, *x.shape[2:]))
            for index in range(len(FILTERS)):
                p = patches(h)
                out = tf.matmul(tf.reshape(p, (members, -1, p.shape[-1])), params[2 * index])
                h = tf.tanh(tf.reshape(out + params[2 * index + 1][:, None, :], (*p.shape[:3], -1)))
            return readout(tf.reshape(h, (members, batch, -1)), params)
    else:
        raise ValueError(f"unknown conv formulation {name!r}; choose from {', '.join(CONV_FORMULATIONS)}")
    return pack, forward


def member_parameters(network) -> list:
    """A solo conv net's kernels and biases, layer by layer, as numpy arrays."""
    return [array.numpy() for layer in network.measured_layers for array in (layer.kernel, layer.bias)]


def stacked_step(name: str, initial: list[list], rates: list[float]):
    """Formulation ``name``'s training step for members with parameters ``initial`` (one list per member,
    as :func:`member_parameters`) and learning rates ``rates``: forward, backward and the Keras momentum
    update (``v <- m v - lr g; w <- w + v``) of every member in one ``tf.function``, the loss being the sum
    of the members' mean cross-entropies so each gets its own gradient. Returns (step, forward logits)."""
    import numpy as np
    import tensorflow as tf

    from lrid.rules import get_rule

    momentum = get_rule(CONV_RULE).Hyperparameters().momentum
    pack, forward = conv_formulation(name)
    count = len(initial[0])
    conv = [index < count - 2 for index in range(count)]
    variables = [tf.Variable(pack([member[i] for member in initial], conv[i])) for i in range(count)]
    velocities = [tf.Variable(tf.zeros_like(v)) for v in variables]
    steps = [tf.constant(pack([np.full_like(member[i], lr) for member, lr in zip(initial, rates)], conv[i]))
             for i in range(count)]

    @tf.function(autograph=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = forward(variables, x)
            loss = tf.reduce_sum(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits), axis=1))
        gradients = tape.gradient(loss, variables)
        for variable, velocity, gradient, rate in zip(variables, velocities, gradients, steps):
            velocity.assign(momentum * velocity - rate * gradient)
            variable.assign_add(velocity)
        return loss

    @tf.function(autograph=False)
    def logits(x):
        return forward(variables, x)

    return step, logits


def stacked_batches(task, size: int, batch_size: int, epoch: int = 0):
    """Every member's batch of each step (member k shuffles with data seed k), stacked: ([K, B, ...], [K, B])."""
    return task.stacked_epoch_batches(epoch, batch_size, list(range(size)))


def checked_step(name: str, size: int, batch_size: int, reference: dict):
    """Formulation ``name``'s step for ``size`` members, after checking that it reproduces the solo conv nets
    (:func:`conv_reference`): the forward pass of every member, and one training step of the first
    :data:`CHECKED_STEPS` (their logits afterwards), to float32 round-off."""
    import numpy as np

    x, y = next(stacked_batches(conv_task(), size, batch_size))
    step, logits = stacked_step(name, reference["initial"][:size], [conv_lr(k) for k in range(size)])
    np.testing.assert_allclose(logits(x).numpy(), reference["logits"][:size], rtol=1e-4, atol=1e-5,
                               err_msg=f"{name}, K={size}: forward pass differs from the solo networks'")
    step(x, y)
    checked = min(size, CHECKED_STEPS)
    np.testing.assert_allclose(logits(x).numpy()[:checked], reference["stepped"][:checked], rtol=1e-4, atol=1e-5,
                               err_msg=f"{name}, K={size}: a training step differs from the solo sgdm step")
    return step


def conv_reference(size: int, batch_size: int) -> dict:
    """What the stacked formulations must reproduce for members 0..size-1 on their first batch: each solo
    net's initial parameters and logits, and the first members' logits after one step of the solo trainer."""
    import numpy as np

    from lrid.config import ModelSpec
    from lrid.models import build_model

    task = conv_task()
    initial, logits, stepped = [], [], []
    for member in range(size):
        x, y = next(task.epoch_batches(0, batch_size, member))
        if member < CHECKED_STEPS:
            network, step = solo_step(CONV_RULE, task, CONV_MODEL, batch_size, seed=member, lr=conv_lr(member))
        else:
            network, step = build_model(ModelSpec(**CONV_MODEL), task, feedback=None, seed=member), None
        logits.append(network(x).numpy())
        initial.append(member_parameters(network))
        if step is not None:
            step(x, y)
            stepped.append(network(x).numpy())
    return {"initial": initial, "logits": np.stack(logits), "stepped": np.stack(stepped)}


def conv_population_block(name: str, size: int, batch_size: int, reference: dict) -> tuple:
    """Formulation ``name``'s loop for ``size`` members (each member's batch, stacked, into one step),
    checked against the solo networks first."""
    import tensorflow as tf

    task = conv_task()
    step = checked_step(name, size, batch_size, reference)
    x, y = next(stacked_batches(task, size, batch_size))
    step = step.get_concrete_function(tf.constant(x), tf.constant(y))

    def epoch():
        steps, loss = 0, None
        for x, y in stacked_batches(task, size, batch_size):
            loss, steps = step(tf.constant(x), tf.constant(y)), steps + 1
        loss.numpy()
        return steps

    return repeated(epoch, size)


def error_line(error: Exception) -> str:
    """The line of an error that says what went wrong: TensorFlow's graph errors wrap it in the traceback of
    the node that failed."""
    noise = ("File ", "[[", "Detected at node", "Graph execution error")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(noise)]
    return (said or lines or [""])[-1][:160]


def conv_rows(sizes: list[int], batch_sizes: list[int], formulations: list[str], rounds: int) -> list[dict]:
    """Network-steps/s of the solo conv net and of each stacked formulation and K, per batch size, timed
    interleaved; ``vs_solo`` is the ratio to the solo rate at the same batch size."""
    rows = []
    for batch_size in batch_sizes:
        reference = conv_reference(max(sizes), batch_size)
        blocks, failed = {"solo": conv_solo_block(batch_size)}, []
        for name in formulations:
            for k in sizes:
                try:
                    blocks[f"{name}, K={k}"] = conv_population_block(name, k, batch_size, reference)
                except Exception as error:  # noqa: BLE001 - a formulation this TensorFlow cannot run is a row
                    # (grouped convolution's filter gradient fails on some CPU builds), not the end of the run
                    failed.append({"batch": batch_size, "case": f"{name}, K={k}", "K": k,
                                   "note": f"failed: {type(error).__name__}: {error_line(error)}"})
        timings = interleaved({case: block for case, (block, _) in blocks.items()}, rounds)
        rates = {case: blocks[case][1] / timing["median_s"] for case, timing in timings.items()}
        for case, timing in timings.items():
            rows.append({"batch": batch_size, "case": case, "K": 1 if case == "solo" else int(case.split("K=")[1]),
                         "network_steps_per_s": round(rates[case], 1), "vs_solo": round(rates[case] / rates["solo"], 2),
                         "rounds_s": timing["rounds_s"]})
        rows += failed
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, one epoch, K up to 32 (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (a pool worker's share)")
    parser.add_argument("--sizes", default=None, help="population sizes (default 1,8,32,128; quick: 1,8,32)")
    parser.add_argument("--rules", default="sgdm,fa,ia,np", help="MLP rules (empty: skip the MLP table)")
    parser.add_argument("--conv-sizes", default=None, help="conv population sizes (default 1,8,32; quick: 1,8; 0: skip)")
    parser.add_argument("--conv-batches", default=None, help="conv batch sizes (default 32,128; quick: 32)")
    parser.add_argument("--conv-formulations", default=",".join(CONV_FORMULATIONS))
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--end-to-end", type=int, default=None, help="K of the end-to-end comparison (0: skip)")
    parser.add_argument("--demo-workers", type=int, default=2, help="workers of the demo sweep comparison (0: skip)")
    parser.add_argument("--onednn", choices=("population", "tensorflow"), default="population",
                        help="TensorFlow's oneDNN kernels in this process: on, as `lrid generate --population` asks "
                        "for them (lrid.lazy_import.prefer_onednn), or TensorFlow's own choice, as solo sweeps run")
    args = parser.parse_args()
    if args.onednn == "population":
        from lrid.lazy_import import prefer_onednn

        prefer_onednn()
    configure_tensorflow(args.threads)
    from tensorflow.python.util import _pywrap_util_port

    onednn = "oneDNN on" if _pywrap_util_port.IsMklEnabled() else "oneDNN off"
    from lrid.generate.population import POPULATION_RULES

    load_before = load_average()
    rounds = args.rounds or (2 if args.quick else 5)
    epochs = 1 if args.quick else 2
    sizes = [int(k) for k in (args.sizes or ("1,8,32" if args.quick else "1,8,32,128")).split(",")]
    steps = epochs * 42  # the digits task's 1,347 training examples at batch 32
    rules = [rule for rule in args.rules.split(",") if rule]
    rows = []
    for rule in rules:
        cases = {"solo": solo_block(rule, epochs)}
        if rule in POPULATION_RULES:
            cases.update({f"K={k}": population_block(rule, k, epochs) for k in sizes})
        timings = interleaved(cases, rounds)
        solo_rate = SOLO_REPEATS * steps / timings["solo"]["median_s"]
        for name, timing in timings.items():
            members = 1 if name == "solo" else int(name.removeprefix("K="))
            networks = SOLO_REPEATS if name == "solo" else members
            rate = networks * steps / timing["median_s"]
            row = {"rule": rule, "case": name, "K": members, "network_steps_per_s": round(rate, 1),
                   "vs_solo": round(rate / solo_rate, 2), "rounds_s": timing["rounds_s"]}
            if members in SPEEDUP_TARGETS and name != "solo":
                row["target"] = f">= {SPEEDUP_TARGETS[members]}x solo"
                row["met"] = verdict(row["vs_solo"] >= SPEEDUP_TARGETS[members], args.quick)
            rows.append(row)
        if rule not in POPULATION_RULES:
            for k in (k for k in sizes if k in SPEEDUP_TARGETS):
                rows.append({"rule": rule, "case": f"K={k}", "K": k, "note": "trains solo (no population step)",
                             "target": f">= {SPEEDUP_TARGETS[k]}x solo", "met": verdict(False, args.quick)})
    if rows:
        print_table(rows, ["rule", "case", "network_steps_per_s", "vs_solo", "target", "met", "note"],
                    f"Population training, digits MLP 64-128-128-10 batch 32 (medians of {rounds} interleaved "
                    f"rounds, {args.threads} thread(s), {onednn} for solo and populations alike, {steps} steps per "
                    "network)")
    conv_sizes = [int(k) for k in (args.conv_sizes or ("1,8" if args.quick else "1,8,32")).split(",") if int(k)]
    conv = []
    if conv_sizes:
        conv = conv_rows(conv_sizes, [int(b) for b in (args.conv_batches or ("32" if args.quick else "32,128")).split(",")],
                         args.conv_formulations.split(","), rounds)
        print_table(conv, ["batch", "case", "network_steps_per_s", "vs_solo", "note"],
                    f"Conv populations: digits conv net (8x8x1, 32-64-64 3x3/2, tanh), sgdm, solo against K stacked "
                    f"in plain TensorFlow (medians of {rounds} interleaved rounds, {args.threads} thread(s), {onednn})")
    runs = []
    e2e_size = args.end_to_end if args.end_to_end is not None else (8 if args.quick else 32)
    if e2e_size:
        for rule in (r for r in rules if r in POPULATION_RULES):
            run = end_to_end(rule, e2e_size, 1 if args.quick else 8)
            run["met"] = verdict(run["recording_share"] <= RECORDING_SHARE_TARGET, args.quick)
            runs.append(run)
    if args.demo_workers:
        # The quick run times a quarter of the demo (24 runs), which judges nothing.
        demo = demo_sweep(args.demo_workers, 32, 24 if args.quick else None)
        demo["met"] = verdict(demo["speedup"] >= DEMO_TARGET, args.quick)
        runs.append(demo)
    if runs:
        print_table(runs, ["rule", "case", "population_s", "solo_s", "speedup", "recording_share", "fixed_s",
                           "beyond_fixed", "target", "met"],
                    "Whole runs with 21 recordings, one population against the same runs solo; and the demo sweep "
                    "(fixed_s: a sweep of one one-epoch run per worker, solo; beyond_fixed: the ratio of the seconds "
                    "beyond it, for reading only)")
    write_result("population", {"threads": args.threads, "onednn": onednn, "rounds": rounds, "epochs": epochs, "rows": rows,
                                "runs": runs, "conv_rows": conv}, load_before, quick=args.quick)


if __name__ == "__main__":
    main()
