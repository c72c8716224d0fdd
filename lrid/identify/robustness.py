"""How well rules are told apart from degraded observables: classify every view a store recorded.

A store generated with ``observe.views`` (:class:`lrid.config.ViewSpec`) holds, besides the full
observables, one degraded view per (units_fraction, noise_std) (:mod:`lrid.observables.degrade`).
:func:`robustness` scores the same classifiers on the same balanced splits for each view, writing each
view's full results under ``RESULTS/views/<view>/`` and the summary ``RESULTS/robustness.json``::

    {"rows": [{"view", "units_fraction", "noise_std", "observables", "classifier",
               "accuracy_mean", "accuracy_sem", "n_runs"}, ...]}

one row per view, observable subset and classifier, the full observables first (``view`` "full",
fraction 1, noise 0).
"""

from __future__ import annotations

import json
from pathlib import Path

from lrid.errors import LridError
from lrid.schema import ClassifySpec
from lrid.store import FULL_VIEW, Store


def view_settings(store: Store) -> dict[str, tuple[float, float]]:
    """Each view the store holds, ``"full"`` first, with its (units_fraction, noise_std)."""
    from lrid.config import ViewSpec

    settings = {FULL_VIEW: (1.0, 0.0)}
    for manifest in store.manifests():
        for view in manifest["spec"].get("observe", {}).get("views", []):
            spec = ViewSpec(**view)
            if spec.name in manifest.get("views", {}):
                settings.setdefault(spec.name, (spec.units_fraction, spec.noise_std))
    return settings


def robustness(
    store: Store | str,
    results_dir: str | Path,
    classifiers: tuple[str, ...] = ("linear", "rf"),
    n_splits: int = 10,
    seed: int = 0,
    n_jobs: int = 1,
    observables: str = "all",
    progress: bool | None = None,
) -> dict:
    """Classify every view of ``store`` (see the module docstring); write and return the robustness table.

    ``observables`` is :func:`lrid.identify.classify`'s: ``;`` separates subsets scored one after another
    (``"weight;act"`` compares how the weights and the activations hold up).
    """
    from lrid.identify import classify

    location = store.location if isinstance(store, Store) else str(store)
    settings = view_settings(Store(location))
    if len(settings) == 1:
        raise LridError(
            f"{location} holds no degraded views; generate a sweep with `observe: {{views: [...]}}` "
            "(e.g. pipelines/robustness.yaml) to measure robustness"
        )
    results_dir = Path(results_dir)
    rows = []
    for view, (units_fraction, noise_std) in settings.items():
        spec = ClassifySpec.build(
            store=location,
            view=view,
            results_dir=results_dir / "views" / view,
            classifiers=tuple(classifiers),
            n_splits=n_splits,
            seed=seed,
            n_jobs=n_jobs,
            observables=observables,
            control=False,
        )
        scores = classify(spec, progress=progress)
        for subset, by_classifier in scores.by_subset.items():
            for classifier, result in by_classifier.items():
                rows.append(
                    {
                        "view": view,
                        "units_fraction": units_fraction,
                        "noise_std": noise_std,
                        "observables": subset,
                        "classifier": classifier,
                        "accuracy_mean": result.accuracy_mean,
                        "accuracy_sem": result.accuracy_sem,
                        "n_runs": scores.n_runs,
                    }
                )
    table = {"rows": rows, "classes": scores.classes, "n_splits": n_splits, "seed": seed}
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "robustness.json").write_text(json.dumps(table, indent=2))
    return table
