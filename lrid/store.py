"""The trajectory store: Parquet observables plus a JSON manifest per run.

Layout under the store root::

    observables/task=T/arch=A/rule=R/<run_id>.parquet   one row per (step, layer)
    runs/<run_id>.json                                   the run's manifest, written last

Both files are written to a temporary name, flushed to disk and renamed, and the manifest only after the
observables: a run without a manifest does not exist, so a killed sweep leaves nothing half-written that a
reader would take for data, and resuming re-runs exactly the runs that have no manifest.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lrid.errors import LridError
from lrid.observables import OBSERVABLES

ID_COLUMNS = ["run_id", "step", "epoch", "layer", "layer_index", "depth_group"]
STATUSES = ("complete", "diverged", "failed")
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int64()),
        ("epoch", pa.float64()),
        ("layer", pa.string()),
        ("layer_index", pa.int32()),
        ("depth_group", pa.string()),
        *[(name, pa.float64()) for name in OBSERVABLES],
    ]
)


def _atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)``, fsync the result, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class Store:
    """A directory of run trajectories and manifests."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def observables_path(self, manifest: dict) -> Path:
        """Where a run's observables live, partitioned hive-style by task, architecture and rule."""
        spec = manifest["spec"]
        return (
            self.root
            / "observables"
            / f"task={spec['task']['name']}"
            / f"arch={spec['model']['arch']}"
            / f"rule={spec['rule']['name']}"
            / f"{manifest['run_id']}.parquet"
        )

    def manifest_path(self, run_id: str) -> Path:
        """Where a run's manifest lives."""
        return self.root / "runs" / f"{run_id}.json"

    def write_run(self, observables: pd.DataFrame | None, manifest: dict) -> None:
        """Write a run's observables (if any), then its manifest; the manifest makes the run exist."""
        if observables is not None and len(observables):
            table = pa.Table.from_pandas(observables[ID_COLUMNS + list(OBSERVABLES)], schema=SCHEMA, preserve_index=False)
            _atomic_write(self.observables_path(manifest), lambda path: pq.write_table(table, path))
            manifest = {**manifest, "observables": str(self.observables_path(manifest).relative_to(self.root))}
        text = json.dumps(manifest, indent=2, sort_keys=True)
        _atomic_write(self.manifest_path(manifest["run_id"]), lambda path: path.write_text(text))

    def manifests(self) -> list[dict]:
        """Every run's manifest, sorted by run id; an unreadable manifest is an error naming the file."""
        runs_dir = self.root / "runs"
        if not runs_dir.is_dir():
            return []
        manifests = []
        for path in sorted(runs_dir.glob("*.json")):
            if path.name.startswith("."):  # a temporary file left by a killed writer
                continue
            try:
                manifests.append(json.loads(path.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LridError(
                    f"manifest {path} is corrupt; delete it and re-run `lrid generate` to redo that run"
                ) from None
        return manifests

    def done_run_ids(self, include_failed: bool = True) -> set[str]:
        """Run ids that have a manifest (optionally leaving out failed runs, so they are retried)."""
        return {
            m["run_id"] for m in self.manifests() if include_failed or m["status"] != "failed"
        }

    def runs_table(self) -> pd.DataFrame:
        """One row per run: id, status, rule, task, arch and the flattened spec fields."""
        rows = []
        for manifest in self.manifests():
            spec = manifest["spec"]
            row = {
                "run_id": manifest["run_id"],
                "status": manifest["status"],
                "rule": spec["rule"]["name"],
                "task": spec["task"]["name"],
                "arch": spec["model"]["arch"],
                **{f"train.{k}": v for k, v in spec["train"].items()},
                **{f"rule.{k}": v for k, v in spec["rule"]["hparams"].items()},
                "final_test_accuracy": manifest.get("final_test_accuracy"),
                "final_train_loss": manifest.get("final_train_loss"),
            }
            rows.append(row)
        return pd.DataFrame(rows)

    def read_observables(self, statuses: tuple[str, ...] = ("complete",)) -> pd.DataFrame:
        """The observables of every run whose status is in ``statuses``, with rule/task/arch columns."""
        frames = []
        for manifest in self.manifests():
            if manifest["status"] not in statuses or "observables" not in manifest:
                continue
            path = self.root / manifest["observables"]
            try:
                frame = pq.read_table(path, schema=SCHEMA).to_pandas()
            except (OSError, pa.ArrowException) as error:
                raise LridError(
                    f"observables file {path} is unreadable ({type(error).__name__}); delete it and "
                    f"{self.manifest_path(manifest['run_id'])}, then re-run `lrid generate` to regenerate the run"
                ) from None
            spec = manifest["spec"]
            frame["rule"] = spec["rule"]["name"]
            frame["task"] = spec["task"]["name"]
            frame["arch"] = spec["model"]["arch"]
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=[*ID_COLUMNS, *OBSERVABLES, "rule", "task", "arch"])
        return pd.concat(frames, ignore_index=True)
