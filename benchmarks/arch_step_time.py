"""Training-step time of every architecture at CIFAR-10 size (32x32x3) on this machine, per rule.

Uses the same timing as ``lrid generate --dry-run`` (compiled step, random inputs, steady state after
warm-up). Prints a table and writes ``benchmarks/results/arch_step_time.json``.

    python benchmarks/arch_step_time.py [--batch 128] [--rules sgdm,fa,ia] [--archs knet,resnet18,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lrid.config import ModelSpec, RuleSpec, RunSpec, TaskSpec, TrainSpec
    from lrid.generate.estimate import time_configuration
    from lrid.models import ARCHITECTURES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rules", default="sgdm,fa,ia")
    parser.add_argument("--archs", default=",".join(a for a in ARCHITECTURES if a != "mlp"))
    args = parser.parse_args()

    rows = []
    print(f"{'arch':<11} {'rule':<5} {'batch':>5} {'ms/step':>9} {'compile s':>9}")
    for arch in args.archs.split(","):
        for rule in args.rules.split(","):
            spec = RunSpec(task=TaskSpec(name="cifar10"), model=ModelSpec(arch=arch), rule=RuleSpec(name=rule),
                           train=TrainSpec(batch_size=args.batch))
            compile_s, step_s, _, _ = time_configuration(spec, args.batch, timing_seconds=1.0)
            rows.append({"arch": arch, "rule": rule, "batch": args.batch, "ms_per_step": round(1000 * step_s, 1),
                         "compile_s": round(compile_s, 1)})
            print(f"{arch:<11} {rule:<5} {args.batch:>5} {1000 * step_s:>9.1f} {compile_s:>9.1f}", flush=True)
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    output = {"benchmark": "arch_step_time", "input": [32, 32, 3], "cpu_count": os.cpu_count(),
              "python": platform.python_version(), "rows": rows}
    (results / "arch_step_time.json").write_text(json.dumps(output, indent=2))
    print(f"wrote {results / 'arch_step_time.json'}")


if __name__ == "__main__":
    main()
