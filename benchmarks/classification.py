"""Benchmark 5: wall time and accuracy of lrid's classifiers against the reference paper's grid searches.

On a store (the demo's, from ``demo_pipeline.py --out``) and on a copy 10x larger, lrid's
``lrid.identify.classify`` scores linear, RF and XGBoost with inner-CV search (``search=True``, 10 splits).
The reference is plain scikit-learn ``GridSearchCV`` on the same features (``build_features``) and the
same outer splits (``balanced_run_splits``, seed 0), with Nayebi et al.'s grids and 5-fold stratified inner
CV: a random forest over max_features {sqrt, log2, None} x n_estimators {20, 50, 100, 500, 1000} (15
configurations) and LinearSVC over C {1, 5e1, ..., 5e6} without PCA and after PCA to {10, ..., 600}
components (84). NaN statistics are median-imputed and standardised before the SVM (it takes no NaN);
PCA sizes above a fold's sample count are infeasible and score NaN, as GridSearchCV records them.

The reference costs minutes per outer split, so it runs on the first ``--reference-splits`` of the 10
splits and its 10-split time is extrapolated; accuracies are compared on those same splits.

The 10x store replicates every run under 10 new ids. Replicas of one network can fall on both sides of
a split, so accuracy there is inflated by construction: that store measures time, not accuracy.

    python benchmarks/classification.py --store OUT/store [--quick] [--jobs 2] [--reference-splits 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from harness import load_average, print_table, write_result

# As importing lrid sets it (lrid/__init__.py), so the reference grids get the same footing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

LRID_CLASSIFIERS = ("linear", "rf", "xgb")
RF_GRID = {"max_features": ["sqrt", "log2", None], "n_estimators": [20, 50, 100, 500, 1000]}
SVM_C = [1, 5e1, 5e2, 5e3, 5e4, 5e5, 5e6]
PCA_COMPONENTS = [10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 600]
SPEED_TARGET = 5.0  # issue #8: >= 5x faster than the reference grids at equal or better accuracy


def replicate_store(source: Path, destination: Path, copies: int) -> int:
    """Write every run of ``source`` ``copies`` times under new ids into ``destination``; return the run count."""
    import pandas as pd

    from lrid.store import Store

    original, replica = Store(str(source)), Store(str(destination))
    count = 0
    for manifest in original.manifests():
        if manifest["status"] != "complete":
            continue
        rows = pd.read_parquet(original.path(manifest["observables"]))
        for copy in range(copies):
            run_id = hashlib.sha256(f"{manifest['run_id']}/{copy}".encode()).hexdigest()[: len(manifest["run_id"])]
            replica.write_run(rows.assign(run_id=run_id), {**manifest, "run_id": run_id})
            count += 1
    return count


def time_lrid(store: Path, jobs: int, splits: int, results: Path, search: bool = True) -> list[dict]:
    """Wall time and accuracy of each lrid classifier (with inner-CV search unless ``search`` is False).

    ``classify`` fits every split and then refits on all runs to save the model, so a split's share of the
    wall time is ``wall / (splits + 1)``.
    """
    from lrid.identify import classify

    rows = []
    for name in LRID_CLASSIFIERS:
        started = time.perf_counter()
        scores = classify(str(store), results / name, classifiers=(name,), n_splits=splits, n_jobs=jobs,
                          search=search, control=False, progress=False)
        wall = time.perf_counter() - started
        summary = scores["classifiers"][name]
        rows.append({"classifier": f"lrid {name} ({'search' if search else 'fixed settings'})", "splits": splits,
                     "wall_s": round(wall, 1), "s_per_split": round(wall / (splits + 1), 2),
                     "accuracy": round(summary["accuracy_mean"], 3),
                     "accuracy_per_split": summary["accuracy_per_split"], "n_runs": scores["n_runs"],
                     "n_samples": scores["n_samples"]})
    return rows


def reference_searches(jobs: int, quick: bool) -> dict:
    """The paper's two grid searches as scikit-learn estimators (``quick``: a few configurations each)."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    rf_grid = {"max_features": ["sqrt"], "n_estimators": [20, 100]} if quick else RF_GRID
    c_values = SVM_C[:2] if quick else SVM_C
    components = PCA_COMPONENTS[:2] if quick else PCA_COMPONENTS
    svm = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ("scale", StandardScaler()), ("pca", "passthrough"), ("svm", LinearSVC())])
    svm_grid = [{"pca": ["passthrough"], "svm__C": c_values},
                {"pca": [PCA(n, random_state=0) for n in components], "svm__C": c_values}]
    inner = StratifiedKFold(5, shuffle=False)
    return {
        "reference rf (15-config grid)": GridSearchCV(RandomForestClassifier(random_state=0), rf_grid, cv=inner,
                                                      n_jobs=jobs, error_score=np.nan),
        "reference svm (84-config grid)": GridSearchCV(svm, svm_grid, cv=inner, n_jobs=jobs, error_score=np.nan),
    }


def time_reference(store: Path, jobs: int, n_splits: int, quick: bool) -> list[dict]:
    """Wall time and accuracy of the reference searches on the first ``n_splits`` of lrid's 10 outer splits."""
    from lrid.identify.features import build_features
    from lrid.identify.splits import balanced_run_splits
    from lrid.store import Store

    features = build_features(Store(str(store)).read_observables(("complete",)))
    classes = sorted(set(features.y))
    y = np.searchsorted(classes, features.y.astype(str))
    run_rules = dict(zip(features.samples["run_id"], features.samples["rule"]))
    splits = balanced_run_splits(run_rules, n_splits=10, test_fraction=0.25, seed=0)[:n_splits]
    rows = []
    for name, search in reference_searches(jobs, quick).items():
        accuracies, started = [], time.perf_counter()
        for train_runs, test_runs in splits:
            train, test = np.isin(features.groups, train_runs), np.isin(features.groups, test_runs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # LinearSVC at C=5e6 does not converge; infeasible PCA sizes
                search.fit(features.X[train], y[train])
            accuracies.append(float(np.mean(search.predict(features.X[test]) == y[test])))
        wall = time.perf_counter() - started
        rows.append({"classifier": name + (" [quick: cut grid]" if quick else ""), "splits": n_splits,
                     "wall_s": round(wall, 1), "s_per_split": round(wall / n_splits, 2),
                     "accuracy": round(float(np.mean(accuracies)), 3), "accuracy_per_split": accuracies})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a store, e.g. demo_pipeline.py --out DIR's DIR/store")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reference-splits", type=int, default=None)
    parser.add_argument("--scale", type=int, default=10, help="copies of every run in the larger store (1: skip it)")
    parser.add_argument("--quick", action="store_true",
                        help="2 splits, lrid without search, cut reference grids, no larger store (smoke run)")
    args = parser.parse_args()
    load_before = load_average()
    splits = 2 if args.quick else 10
    reference_splits = args.reference_splits or 1

    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        rows = [{"store": "demo", **row}
                for row in time_lrid(args.store, args.jobs, splits, directory / "demo", search=not args.quick)]
        reference = [{"store": "demo", **row}
                     for row in time_reference(args.store, args.jobs, reference_splits, args.quick)]
        if not args.quick and args.scale > 1:
            larger = directory / "larger"
            n_runs = replicate_store(args.store, larger, args.scale)
            rows += [{"store": f"{args.scale}x ({n_runs} runs)", **row}
                     for row in time_lrid(larger, args.jobs, splits, directory / "larger-results")]

    # Speed and accuracy against the reference, per outer split, on the splits both ran.
    for row in rows[:len(LRID_CLASSIFIERS)]:
        same_splits = row["accuracy_per_split"][:reference_splits]
        row["accuracy_on_reference_splits"] = round(float(np.mean(same_splits)), 3)
        pair = "reference svm" if "linear" in row["classifier"] else "reference rf"
        baseline = next(r for r in reference if r["classifier"].startswith(pair))
        row["vs"] = pair
        row["speedup"] = round(baseline["s_per_split"] / row["s_per_split"], 1)
        row["met"] = row["speedup"] >= SPEED_TARGET and row["accuracy_on_reference_splits"] >= baseline["accuracy"]
    rows += reference
    print_table(rows, ["store", "classifier", "splits", "wall_s", "s_per_split", "accuracy",
                       "accuracy_on_reference_splits", "vs", "speedup", "met"],
                f"Classification (jobs={args.jobs}); speed-up per outer split against the reference grid search "
                f"(target >= {SPEED_TARGET:.0f}x at equal or better accuracy on the same {reference_splits} split(s))")
    write_result("classification", {"jobs": args.jobs, "reference_splits": reference_splits, "rows": rows}, load_before)


if __name__ == "__main__":
    main()
