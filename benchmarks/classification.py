"""Benchmark 5: wall time and accuracy of lrid's classifiers against the reference paper's grid searches.

On the demo store (from ``demo_pipeline.py --out``) and on a store 10x larger (``demo_10x.yaml``: the demo
sweep with 30 data seeds instead of 3, 960 genuine runs, generated here unless ``--larger-store`` names
one), ``lrid.identify.classify`` scores linear, RF and XGBoost with inner-CV search (``search=True``,
10 splits). The reference is plain scikit-learn ``GridSearchCV`` on the same features (``build_features``)
and the same outer splits (``balanced_run_splits``, seed 0), with Nayebi et al.'s grids and 5-fold
stratified inner CV: a random forest over max_features {sqrt, log2, None} x n_estimators {20, 50, 100,
500, 1000} (15 configurations) and LinearSVC over C {1, 5e1, ..., 5e6} without PCA and after PCA to
{10, ..., 600} components (84). NaN statistics are median-imputed and standardised before the SVM (it takes
no NaN); PCA sizes above a fold's sample count are infeasible and score NaN, as GridSearchCV records them.

Speed is compared two ways, both stated: per outer split (the target: a whole search, as a user waits for
it) and per configuration fit (a split's time over its plain fits: grid size x inner folds + the refit), since
the grids differ in size (lrid's 4 to 6 configurations against the reference's 15 and 84) and a smaller grid
is a part of the per-split speed-up. Accuracy is the mean ± s.e.m. over the outer splits lrid and the
reference share. The reference costs minutes per outer split on the demo store and about half an hour on
the larger one, so it runs on the first ``--reference-splits`` (``--larger-reference-splits``) of the 10
splits; when that is fewer than lrid's, the table says so and the accuracy comparison, and with it the
target, is not judged (pass ``--reference-splits 10`` to judge it).

    python benchmarks/classification.py --store OUT/store [--stores demo,larger] [--larger-store DIR]
        [--reference-splits 1] [--larger-reference-splits 1] [--jobs 2] [--quick]

Results go to ``results/classification.json``, or ``results/classification_larger.json`` with ``--stores larger``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from harness import load_average, print_table, verdict, write_result

# As importing lrid sets it (lrid/__init__.py), so the reference grids get the same footing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

LRID_CLASSIFIERS = ("linear", "rf", "xgb")
RF_GRID = {"max_features": ["sqrt", "log2", None], "n_estimators": [20, 50, 100, 500, 1000]}
SVM_C = [1, 5e1, 5e2, 5e3, 5e4, 5e5, 5e6]
PCA_COMPONENTS = [10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 600]
LARGER_SPEC = Path(__file__).resolve().parent / "demo_10x.yaml"
SPEED_TARGET = 5.0  # issue #8: >= 5x faster than the reference grids at equal or better accuracy


def larger_store(directory: Path, jobs: int) -> tuple[Path, float]:
    """Generate ``demo_10x.yaml`` into ``directory/store`` with ``jobs`` pool workers; return it and the seconds taken."""
    from lrid.config import load_sweep
    from lrid.generate import generate
    from lrid.generate.executors import make_executor

    store = directory / "store"
    started = time.perf_counter()
    summary = generate(load_sweep(LARGER_SPEC), str(store), executor=make_executor("process", workers=jobs))
    if summary.complete != summary.total:
        raise RuntimeError(f"{LARGER_SPEC.name}: only {summary.complete} of {summary.total} runs completed")
    return store, time.perf_counter() - started


def fits_per_split(grid_size: int, inner_folds: int) -> int:
    """Plain fits one outer split costs: every configuration on every inner fold, then the refit of the best
    (``inner_folds`` 0: one fit with fixed settings)."""
    return grid_size * inner_folds + 1


def load_problem(store: Path) -> dict:
    """The features, encoded labels and lrid's 10 outer splits (seed 0) of ``store``, as both sides see them."""
    from lrid.identify.features import build_features
    from lrid.identify.splits import balanced_run_splits
    from lrid.store import Store

    features = build_features(Store(str(store)).read_observables(("complete",)))
    classes = sorted(set(features.y))
    run_rules = dict(zip(features.samples["run_id"], features.samples["rule"]))
    return {"features": features, "y": np.searchsorted(classes, features.y.astype(str)),
            "splits": balanced_run_splits(run_rules, n_splits=10, test_fraction=0.25, seed=0)}


def lrid_inner_folds(problem: dict) -> int:
    """The inner folds lrid's search uses on the first outer split's training runs (its own rule for them)."""
    from lrid.identify.splits import inner_cv

    train = np.isin(problem["features"].groups, problem["splits"][0][0])
    return inner_cv(problem["y"][train], problem["features"].groups[train]).get_n_splits()


def time_lrid(store: Path, jobs: int, splits: int, results: Path, inner_folds: int, search: bool = True) -> list[dict]:
    """Wall time and accuracy of each lrid classifier (with inner-CV search over ``inner_folds`` folds unless
    ``search`` is False).

    ``classify`` fits every split and then refits on all runs to save the model, so a split's share of the
    wall time is ``wall / (splits + 1)``.
    """
    from sklearn.model_selection import ParameterGrid

    from lrid.identify import classify
    from lrid.identify.classifiers import search_grid
    from lrid.schema import ClassifySpec

    rows = []
    for name in LRID_CLASSIFIERS:
        started = time.perf_counter()
        spec = ClassifySpec(store=str(store), results_dir=results / name, classifiers=(name,), n_splits=splits,
                            n_jobs=jobs, search=search, control=False)
        scores = classify(spec, progress=False)
        wall = time.perf_counter() - started
        summary = scores.classifiers[name]
        fits = fits_per_split(len(ParameterGrid(search_grid(name))), inner_folds) if search else fits_per_split(1, 0)
        rows.append({"classifier": f"lrid {name} ({'search' if search else 'fixed settings'})", "splits": splits,
                     "wall_s": round(wall, 1), "s_per_split": round(wall / (splits + 1), 2), "fits_per_split": fits,
                     "s_per_fit": round(wall / (splits + 1) / fits, 3), "accuracy": round(summary.accuracy_mean, 3),
                     "accuracy_per_split": summary.accuracy_per_split, "n_runs": scores.n_runs,
                     "n_samples": scores.n_samples})
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


def time_reference(problem: dict, jobs: int, n_splits: int, quick: bool) -> list[dict]:
    """Wall time and accuracy of the reference searches on the first ``n_splits`` of lrid's 10 outer splits."""
    from sklearn.model_selection import ParameterGrid

    features, y, splits = problem["features"], problem["y"], problem["splits"][:n_splits]
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
        fits = fits_per_split(len(ParameterGrid(search.param_grid)), search.cv.get_n_splits())
        rows.append({"classifier": name + (" [quick: cut grid]" if quick else ""), "splits": n_splits,
                     "wall_s": round(wall, 1), "s_per_split": round(wall / n_splits, 2), "fits_per_split": fits,
                     "s_per_fit": round(wall / n_splits / fits, 3), "accuracy": round(float(np.mean(accuracies)), 3),
                     "accuracy_per_split": accuracies, "accuracy_shared": mean_sem(accuracies)})
    return rows


def mean_sem(values: list[float]) -> str:
    """``mean ± s.e.m. (n splits)`` of per-split accuracies; no s.e.m. from one split."""
    values = np.asarray(values, dtype=float)
    spread = f" ± {values.std(ddof=1) / np.sqrt(len(values)):.3f}" if len(values) > 1 else " ± –"
    return f"{values.mean():.3f}{spread} ({len(values)} split{'s' if len(values) > 1 else ''})"


def compare(rows: list[dict], reference: list[dict], quick: bool) -> None:
    """Add to each lrid row its speed-ups over its reference grid (per outer split and per configuration fit),
    both sides' accuracy over the outer splits they share, and the verdicts.

    The speed target is judged per outer split. Accuracy is judged (lrid's mean over the shared splits at
    least the reference's) only when the reference ran on all of lrid's outer splits; otherwise it, and the
    target with it, is not judged, and ``note`` says why.
    """
    for row in rows:
        pair = "reference svm" if "linear" in row["classifier"] else "reference rf"
        baseline = next(r for r in reference if r["classifier"].startswith(pair))
        shared = min(len(baseline["accuracy_per_split"]), len(row["accuracy_per_split"]))
        ours, theirs = row["accuracy_per_split"][:shared], baseline["accuracy_per_split"][:shared]
        row["vs"] = pair
        row["speedup_per_split"] = round(baseline["s_per_split"] / row["s_per_split"], 1)
        row["speedup_per_fit"] = round(baseline["s_per_fit"] / row["s_per_fit"], 1)
        row["accuracy_shared"], row["reference_accuracy_shared"] = mean_sem(ours), mean_sem(theirs)
        row["speed_met"] = row["speedup_per_split"] >= SPEED_TARGET
        if shared < len(row["accuracy_per_split"]):
            row["accuracy_met"] = None
            row["note"] = (f"reference ran on {shared} of {len(row['accuracy_per_split'])} outer splits (for time): "
                           "accuracy not judged")
        else:
            row["accuracy_met"] = bool(np.mean(ours) >= np.mean(theirs))
            row["note"] = ""
        row["met"] = verdict(None if row["accuracy_met"] is None else row["speed_met"] and row["accuracy_met"], quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="the demo store, e.g. demo_pipeline.py --out DIR's DIR/store")
    parser.add_argument("--stores", default="demo,larger", help="which stores to measure: demo, larger or both")
    parser.add_argument("--larger-store", type=Path, default=None,
                        help=f"a store of {LARGER_SPEC.name}'s runs (default: generate one, about 3 minutes)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reference-splits", type=int, default=1)
    parser.add_argument("--larger-reference-splits", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="demo store only, 2 splits, lrid without search, cut reference grids (smoke run)")
    args = parser.parse_args()
    stores = ["demo"] if args.quick else args.stores.split(",")
    if set(stores) - {"demo", "larger"} or not stores:
        raise SystemExit(f"--stores {args.stores!r}: choose demo, larger or demo,larger")
    if "demo" in stores and args.store is None:
        raise SystemExit("--store is required to measure the demo store (or pass --stores larger)")
    load_before = load_average()
    splits = 2 if args.quick else 10

    rows, reference_splits, generation = [], {}, {}
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        for label in stores:
            if label == "demo":
                store, n_reference = args.store, args.reference_splits
            else:
                store, n_reference = args.larger_store, args.larger_reference_splits
                if store is None:
                    store, seconds = larger_store(directory / "larger", args.jobs)
                    generation = {"spec": LARGER_SPEC.name, "wall_s": round(seconds, 1)}
            problem = load_problem(store)
            ours = time_lrid(store, args.jobs, splits, directory / f"{label}-results", lrid_inner_folds(problem),
                             search=not args.quick)
            reference = time_reference(problem, args.jobs, n_reference, args.quick)
            compare(ours, reference, args.quick)
            name = "demo" if label == "demo" else f"10x ({ours[0]['n_runs']} runs)"
            rows += [{"store": name, **row} for row in ours + reference]
            reference_splits[label] = n_reference

    print_table(rows, ["store", "classifier", "splits", "s_per_split", "fits_per_split", "s_per_fit", "accuracy_shared",
                       "vs", "reference_accuracy_shared", "speedup_per_split", "speedup_per_fit", "met", "note"],
                f"Classification (jobs={args.jobs}); speed-up against the reference grid search per outer split "
                f"(target >= {SPEED_TARGET:.0f}x at equal or better accuracy) and per configuration fit; accuracy "
                f"mean ± s.e.m. over the outer splits both ran (reference splits: {reference_splits})")
    result = "classification_larger" if stores == ["larger"] else "classification"
    write_result(result, {"jobs": args.jobs, "reference_splits": reference_splits, "larger_store_generation": generation,
                          "rows": rows}, load_before, quick=args.quick)


if __name__ == "__main__":
    main()
