"""Train digits MLPs or conv nets with foreign learning-rule implementations and write lrid-format raw recordings.

    python -m benchmarks.foreign.generate --out DIR --networks 64 --seed 0 [--rules sgdm,adam,fa,ia,ss,np] [--arch conv]

writes ``DIR/<run>.npz`` (one network each: ``steps``, ``weight/<layer>`` [T, in, out] (conv [T, k, k, in,
out]), ``act/<layer>`` [T, probe, units] (conv [T, probe, H, W, channels]), ``actchange/<layer>`` [T, probe],
``layers``, ``epoch``, ``run``) and ``DIR/labels.csv`` (run, true rule and the sampled settings). The same
seed writes byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.foreign.conv import init_conv_net
from benchmarks.foreign.data import IMAGE_SHAPE, Digits, load
from benchmarks.foreign.network import ACTIVATIONS, init_net
from benchmarks.foreign.rules import RULES, Rule, make_rule

DEFAULT_RULES = ("sgdm", "adam", "fa", "ia", "ss", "np")
# mlp: 2 or 3 dense hidden layers; conv: 2 or 3 3x3 conv layers (the first of stride 1 or 2, the rest 2).
ARCHITECTURES = ("mlp", "conv")
POINTS = 25
# Log-uniform learning-rate ranges per optimizer; node perturbation's are its own (noisy, smaller gradient).
LR_RANGES = {"sgdm": (0.005, 0.05), "adam": (3e-4, 3e-3), "np": (0.02, 0.05)}
# Kunin et al.'s IA ratios alpha : beta : gamma = 2 : 1 : 1, scaled per network (see ia_coefficients).
KUNIN = (2e-3, 1e-3, 1e-3)
IA_RELAXATIONS = 5.0
LABEL_FIELDS = ("run", "rule", "optimizer", "lr", "batch_size", "epochs", "hidden", "activation", "init", "gain",
                "steps", "draws", "final_test_accuracy")
# A conv net's labels also say so, and its strides ("hidden" holds its channels).
CONV_LABEL_FIELDS = (*LABEL_FIELDS, "arch", "strides")


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw whose logarithm is uniform on [log low, log high]."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def ia_coefficients(feedback_lr: float, total_steps: int) -> tuple[float, float, float]:
    """Kunin's coefficients scaled so that B's decay alone relaxes ``IA_RELAXATIONS`` time constants in training.

    Kunin et al. ran ~10^6 steps; at their coefficients a budget of a few hundred steps leaves B where it
    started, i.e. IA would be FA. Scaling by the budget keeps what their setting means (B forgets its random
    start and settles on the ridge pseudo-inverse of W) instead of one fixed multiplier for every budget.
    """
    scale = IA_RELAXATIONS / (2 * KUNIN[2] * feedback_lr * total_steps)
    return tuple(c * scale for c in KUNIN)


def sample_settings(rule: str, rng: np.random.Generator, n_train: int, arch: str = "mlp") -> dict:
    """One network's architecture, initialisation, budget and optimizer for ``rule``.

    ``hidden`` is the hidden layers' widths, or the conv layers' channels (with their ``strides``).
    """
    depth = int(rng.integers(2, 4))
    if arch == "conv":
        hidden = [int(round(log_uniform(rng, 8, 48))) for _ in range(depth)]
        strides = [int(rng.choice([1, 2])), *[2] * (depth - 1)]
    else:
        hidden = [int(round(log_uniform(rng, 64, 192))) for _ in range(depth)]
    batch_size = int(rng.choice([32, 48, 64, 96, 128]))
    epochs = int(rng.integers(10, 31))
    if rule in ("sgdm", "adam"):
        optimizer = rule
    elif rule in ("np", "np_wn"):
        optimizer = "sgd"
    else:
        optimizer = str(rng.choice(["sgdm", "adam"]))
    lr = log_uniform(rng, *LR_RANGES["np" if optimizer == "sgd" else optimizer])
    settings = {
        "hidden": hidden,
        "activation": str(rng.choice(ACTIVATIONS)),
        "init": str(rng.choice(["lecun", "he"])),
        "gain": float(rng.uniform(0.8, 1.25)),
        "batch_size": batch_size,
        "epochs": epochs,
        "optimizer": optimizer,
        "lr": lr,
        "steps": epochs * -(-n_train // batch_size),
    }
    if arch == "conv":
        settings["arch"], settings["strides"] = arch, strides
    if rule == "ia":
        settings["feedback_lr"] = 0.01
        settings["ia_coefficients"] = ia_coefficients(settings["feedback_lr"], settings["steps"])
    if rule in ("np", "np_wn"):
        settings["sigma"] = log_uniform(rng, 1e-3, 1e-2)
    return settings


@dataclass
class Trained:
    """A trained network's recording (arrays keyed as in the npz), its steps and epochs, its test accuracy."""

    arrays: dict[str, np.ndarray]
    steps: np.ndarray
    epochs: np.ndarray
    accuracy: float
    learner: Rule


def train_network(rule: str, settings: dict, data: Digits, rng: np.random.Generator) -> Trained | None:
    """Train one network, recording at ``POINTS`` evenly spaced steps (step 0 and the last included).

    Returns None if the loss or the weights stop being finite.
    """
    from threadpoolctl import threadpool_limits  # ships with scikit-learn

    # The matrices are small, so BLAS threads only contend: on 2 busy cores they make training ~20x slower.
    with threadpool_limits(1):
        return _train(rule, settings, data, rng)


def _train(rule: str, settings: dict, data: Digits, rng: np.random.Generator) -> Trained | None:
    conv = settings.get("arch") == "conv"
    if conv:
        net = init_conv_net(rng, IMAGE_SHAPE, settings["hidden"], settings["strides"], 10, settings["activation"],
                            settings["init"], settings["gain"])
        data = data.as_images()
    else:
        sizes = [data.x_train.shape[1], *settings["hidden"], 10]
        net = init_net(rng, sizes, settings["activation"], settings["init"], settings["gain"])
    learner = make_rule(rule, net, rng, settings)
    n_train, batch_size = len(data.y_train), settings["batch_size"]
    total = settings["steps"]
    record_at = np.unique(np.round(np.linspace(0, total, POINTS)).astype(np.int64))
    names = [f"{'conv' if conv else 'hidden'}{i + 1}" for i in range(len(settings["hidden"]))] + ["readout"]
    traces = {f"{kind}/{name}": [] for kind in ("weight", "act", "actchange") for name in names}

    def record():
        _, pre, outputs = net.forward(data.probe)
        for name, w, out, change in zip(names, net.weights, outputs, net.activity_change(pre, outputs)):
            # lrid's layout: dense [in, out], conv [k, k, in, out].
            traces[f"weight/{name}"].append(w.transpose(2, 3, 1, 0).copy() if w.ndim == 4 else w.T.copy())
            traces[f"act/{name}"].append(out)
            traces[f"actchange/{name}"].append(change)

    step = 0
    record()
    for _ in range(settings["epochs"]):
        order = rng.permutation(n_train)
        for start in range(0, n_train, batch_size):
            batch = order[start:start + batch_size]
            loss = learner.step(data.x_train[batch], data.y_train[batch])
            step += 1
            if not np.isfinite(loss) or not all(np.isfinite(w).all() for w in net.weights):
                return None
            if step in record_at:
                record()
    logits = net.forward(data.x_test)[2][-1]
    accuracy = float(np.mean(logits.argmax(axis=1) == data.y_test))
    arrays = {key: np.stack(values).astype(np.float32) for key, values in traces.items()}
    arrays["layers"] = np.array(names)
    return Trained(arrays, record_at, record_at / -(-n_train // batch_size), accuracy, learner)


def generate_networks(out_dir, n: int, seed: int = 0, rules=DEFAULT_RULES, progress: bool = False, arch: str = "mlp"):
    """Train ``n`` networks of ``arch``, the rules in turn, and write their recordings and ``labels.csv`` to
    ``out_dir``.

    ``rules`` is a sequence of names from :data:`RULES` (or one comma-separated string).
    Network i draws everything (settings, initialisation, data order, noise) from SeedSequence([seed, i])
    (conv nets: [seed, i, 1]); a network that diverges is redrawn from the same stream. Returns [(path, rule)]
    in network order.
    """
    rules = tuple(rules.split(",") if isinstance(rules, str) else rules)
    unknown = [r for r in rules if r not in RULES]
    if not rules:
        raise ValueError(f"no rules given; name at least one of {', '.join(RULES)}")
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; choose from {', '.join(RULES)}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    conv = arch == "conv"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load()
    written, rows = [], []
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="foreign networks", unit="net")
    for index in indices:
        rule = rules[index % len(rules)]
        rng = np.random.default_rng(np.random.SeedSequence([seed, index, 1] if conv else [seed, index]))
        for draws in range(1, 11):
            settings = sample_settings(rule, rng, len(data.y_train), arch)
            result = train_network(rule, settings, data, rng)
            if result is not None:
                break
        else:
            raise RuntimeError(f"network {index} ({rule}) diverged in 10 draws; narrow LR_RANGES")
        run = f"foreign-{'conv-' if conv else ''}s{seed}-{index:04d}"
        path = out_dir / f"{run}.npz"
        # numpy.savez stamps every entry with the same fixed date, so equal arrays give equal bytes.
        np.savez(path, **result.arrays, steps=result.steps, epoch=result.epochs, run=np.array(run))
        written.append((path, rule))
        hidden = "-".join(map(str, settings["hidden"]))
        fields = CONV_LABEL_FIELDS if conv else LABEL_FIELDS
        rows.append({**{k: settings[k] for k in fields if k in settings}, "run": run, "rule": rule,
                     "hidden": hidden, "draws": draws, "lr": f"{settings['lr']:.6g}", "gain": f"{settings['gain']:.4f}",
                     "final_test_accuracy": f"{result.accuracy:.4f}",
                     **({"strides": "-".join(map(str, settings["strides"]))} if conv else {})})
    with open(out_dir / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CONV_LABEL_FIELDS if conv else LABEL_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return written


def main(argv=None) -> None:
    """Command-line entry point: parse arguments, generate, print the mean test accuracy per rule."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.foreign.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory for the .npz recordings and labels.csv")
    parser.add_argument("--networks", type=int, default=64, help="how many networks (the rules take turns)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", default=",".join(DEFAULT_RULES), help=f"comma-separated, from {','.join(RULES)}")
    parser.add_argument("--arch", default="mlp", choices=ARCHITECTURES,
                        help="mlp: 2-3 dense hidden layers; conv: 2-3 3x3 conv layers and a dense readout")
    args = parser.parse_args(argv)
    rules = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    if args.networks < 1:
        parser.error("--networks must be at least 1")
    try:
        generate_networks(args.out, args.networks, args.seed, rules, progress=True, arch=args.arch)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    with open(Path(args.out) / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    for rule in rules:
        accuracies = [float(r["final_test_accuracy"]) for r in rows if r["rule"] == rule]
        if accuracies:
            print(f"{rule:6s} {len(accuracies):3d} networks  test accuracy mean {np.mean(accuracies):.3f}  min {np.min(accuracies):.3f}")


if __name__ == "__main__":
    main()
