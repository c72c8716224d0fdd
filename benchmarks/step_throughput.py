"""Benchmark 1: training steps per second of every lrid rule against Keras ``model.fit`` on the same network.

Two workloads (``workloads.py``): the demo's digits MLP (64-128-128-10, tanh, batch 32, a block of 8
epochs = one demo run's training) and KNet on random CIFAR-shaped images (batch 128, a block of one epoch). Each lrid rule trains through the loop ``lrid generate`` runs (the task's numpy
batches into the rule's compiled step, no recording); the baseline is ``model.fit`` with SGD on an
equivalent plain Keras model (the same layers as stock Keras layers) on exactly as many examples, so both
take the same number of full batches. Every case is timed alternately in one process with the same thread
settings; the table reports medians, each rule's ratio to ``model.fit`` and to lrid's backprop step (sgdm).

    python benchmarks/step_throughput.py [--quick] [--threads 1] [--models mlp,knet]
"""

from __future__ import annotations

import argparse

from harness import configure_tensorflow, interleaved, load_average, print_table, verdict, write_result
from workloads import WORKLOADS, keras_twin, register_cifar_shaped

MLP_RULES = ("sgd", "sgdm", "adam", "fa", "ss", "ia", "np", "dtp", "sdtp")
CONV_RULES = ("sgd", "sgdm", "adam", "fa", "ss", "ia")
# Targets from issue #8: each rule's step time relative to lrid's backprop step.
STEP_TIME_TARGETS = {"fa": 1.2, "ss": 1.2, "ia": 1.2, "np": 1.5, "dtp": 2.5, "sdtp": 2.5}


def backprop_optimizer(case: str) -> str:
    """The backprop rule (sgd, sgdm or adam) with the optimizer a rule uses by default."""
    if case == "keras fit":
        return "sgdm"
    from lrid.rules import get_rule

    rule = get_rule(case)({}, seed=0)
    return rule.optimizer or rule.hparams.optimizer


def lrid_block(task, model_spec, rule_name: str, batch_size: int, epochs: int):
    """A callable training ``epochs`` epochs of ``task`` with the rule's compiled step, as the trainer does."""
    from lrid.models import build_model
    from lrid.rules import get_rule
    from lrid.rules.base import restrict_weight_decay

    rule = get_rule(rule_name)({}, seed=0)
    model = build_model(model_spec, task, feedback=rule.feedback, seed=0)
    optimizer = rule.make_optimizer()
    restrict_weight_decay(optimizer, model)
    optimizer.build(model.trainable_variables)
    step = rule.make_train_step(model, optimizer)

    def block():
        loss = None
        for epoch in range(epochs):
            for x, y in task.epoch_batches(epoch, batch_size, 0):
                loss = step(x, y)
        float(loss)  # wait for the last step

    return block


def keras_block(task, workload, batch_size: int, epochs: int):
    """A callable running ``model.fit`` (SGD) for ``epochs`` epochs on the task's full batches."""
    import keras

    steps = task.steps_per_epoch(batch_size)
    x = task._prepare(task.x_train[: steps * batch_size])
    y = task.y_train[: steps * batch_size]
    model = keras_twin(workload)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def block():
        model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)

    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds and a smaller KNet epoch (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (a pool worker's share)")
    parser.add_argument("--models", default="mlp,knet")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    configure_tensorflow(args.threads)
    load_before = load_average()
    rounds = args.rounds or (2 if args.quick else 7)

    rows = []
    for model_name in args.models.split(","):
        from lrid.config import ModelSpec
        from lrid.tasks import get_task

        register_cifar_shaped(1024 if args.quick else 2048)
        workload = WORKLOADS[model_name]
        task, model_spec = get_task(workload.task_name), ModelSpec(**workload.model)
        batch, epochs = workload.batch_size, workload.epochs
        rules = MLP_RULES if model_name == "mlp" else CONV_RULES
        steps = epochs * task.steps_per_epoch(batch)
        cases = {"keras fit": keras_block(task, workload, batch, epochs)}
        cases.update({rule: lrid_block(task, model_spec, rule, batch, epochs) for rule in rules})
        timings = interleaved(cases, rounds)
        keras_rate = steps / timings["keras fit"]["median_s"]
        for name, timing in timings.items():
            rate = steps / timing["median_s"]
            # A rule is compared with backprop under its own optimizer (np and dtp default to Adam), so the
            # ratio is the cost of its learning signal, not of the optimizer it happens to use.
            optimizer = backprop_optimizer(name)
            row = {"model": model_name, "case": name, "batch": batch, "steps": steps,
                   "steps_per_s": round(rate, 1), "vs_keras_fit": round(rate / keras_rate, 2),
                   "backprop_baseline": optimizer,
                   "time_vs_lrid_backprop": round(timing["median_s"] / timings[optimizer]["median_s"], 2),
                   "rounds_s": timing["rounds_s"]}
            if name in ("sgd", "sgdm", "adam"):
                row["target"] = ">= 1.0x keras fit"
                row["met"] = verdict(row["vs_keras_fit"] >= 1.0, args.quick)
            elif name in STEP_TIME_TARGETS:
                row["target"] = f"<= {STEP_TIME_TARGETS[name]}x backprop"
                row["met"] = verdict(row["time_vs_lrid_backprop"] <= STEP_TIME_TARGETS[name], args.quick)
            rows.append(row)
    print_table(rows, ["model", "case", "batch", "steps_per_s", "vs_keras_fit", "backprop_baseline",
                       "time_vs_lrid_backprop", "target", "met"],
                f"Step throughput (medians of {rounds} interleaved rounds, {args.threads} thread(s))")
    write_result("step_throughput", {"threads": args.threads, "rounds": rounds, "rows": rows}, load_before, quick=args.quick)


if __name__ == "__main__":
    main()
