"""The default identifier: variants by the measures a recording carries, the model card, `lrid identify INPUT`."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrid.errors import LridError
from lrid.identify.default_identifier import (
    DIRECTORY_VARIABLE,
    PARTIAL_VARIANTS,
    VARIANTS,
    carried_measures,
    describe_card,
    identify_default,
    measured_band,
    partial_note,
    read_card,
    refresh_transfer,
    reliability_note,
    train_default,
    variant_for,
    REACH_VARIANTS,
    top_reach_present,
)
from lrid.identify.inference import read_input
from lrid.generate.export import export_recording
from lrid.store import Store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tiny_store, tmp_path_factory):
    """A default identifier built from the tiny store, with a planted transfer result for its card."""
    directory = tmp_path_factory.mktemp("default")
    transfer = directory / "transfer.json"
    draws = {"classifier": "linear", "draws": 3, "fraction": 2 / 3,
             "spread": {"accuracy_all": {"mean": 0.6, "sd": 0.05, "min": 0.55, "max": 0.65},
                        "accuracy_paper_candidates": {"mean": 0.7, "sd": 0.1, "min": 0.6, "max": 0.8}}}
    within = [{"rules": "paper 4", "classifier": "linear", "splits": 10, "mean": 0.73, "sem": 0.01,
               "recall": {"adam": 0.9, "fa": 0.6, "ia": 0.55, "sgdm": 0.85}, "most_mistaken_for": {"fa": "ia", "ia": "fa"}},
              {"rules": "paper 4", "classifier": "rf", "splits": 10, "mean": 0.1, "sem": 0.01, "recall": {}}]
    bands = [{"naming": "all", "classifier": "linear", "at_least": level, "networks": n, "coverage": n / 10,
              "accuracy": accuracy} for level, n, accuracy in ((0.0, 10, 0.7), (0.5, 6, 0.8), (0.7, 3, 1.0))]
    bands.append({"naming": "all", "classifier": "rf", "at_least": 0.9, "networks": 1, "coverage": 0.1, "accuracy": 0.0})
    by_schedule = [{"classifier": "linear", "schedule": schedule, "points": points, "trained_on": trained_on,
                    "accuracy_all": accuracy}
                   for schedule, points, trained_on, accuracy in (
                       ("as recorded", 6, "+ even4,log3", 0.8), ("even4", 4, "as recorded", 0.4),
                       ("even4", 4, "+ even4,log3", 0.65), ("log4", 4, "+ even4,log3", 0.7), ("even3", 3, "+ even4,log3", 0.6))]
    sets = [{"set": "pooled", "naming": "all", "classifier": "linear", "coverage_asked": 0.9, "threshold": 0.2,
             "networks": 10, "coverage": 0.8, "mean_size": 1.7},
            {"set": "pooled", "naming": "all", "classifier": "rf", "coverage_asked": 0.9, "threshold": 0.2,
             "networks": 10, "coverage": 0.1, "mean_size": 9.0},
            # the same networks broken down by rule and by schedule: not what a note or the card quotes
            {"set": "pooled", "naming": "all", "schedule": "as recorded", "rule": "fa", "classifier": "linear",
             "coverage_asked": 0.9, "threshold": 0.2, "networks": 3, "coverage": 0.33, "mean_size": 2.0},
            {"set": "pooled", "naming": "all", "schedule": "even4", "rule": None, "classifier": "linear",
             "coverage_asked": 0.9, "threshold": 0.2, "networks": 10, "coverage": 0.5, "mean_size": 2.0}]
    # foreign networks at some layers: only the rows of identifiers trained as the partial variants are quoted
    at_layers = [{"classifier": classifier, "measures": measures, "layers": layers, "trained_on": trained_on,
                  "networks": 20 if layers != "single:2" else 9, "accuracy_all": accuracy}
                 for classifier, measures, layers, trained_on, accuracy in (
                     ("linear", "weight,act", "whole", "+ hidden,single", 0.7),
                     ("linear", "weight,act", "hidden", "+ hidden,single", 0.55),
                     ("linear", "weight,act", "single:0", "+ hidden,single", 0.4),
                     ("linear", "weight,act", "single:2", "+ hidden,single", 0.3),
                     ("linear", "weight,act", "hidden", "whole networks", 0.1),
                     ("rf", "weight,act", "hidden", "+ hidden,single", 0.05),
                     ("linear", "act", "hidden", "+ hidden,single", 0.45),
                     ("linear", "act", "single:0", "+ hidden,single", 0.35))]
    foreign = {"confidence": bands, "summary": [{"classifier": "linear", "networks": 10, "accuracy_all": 0.7, "accuracy_paper_rules": 0.5,
                            "accuracy_paper_candidates": 0.75}], "zoo_draws": draws, "by_schedule": by_schedule,
               "prediction_sets": sets, "by_layers": at_layers,
               "fit_seeds": {"classifier": "linear", "seeds": [1, 2],
                             "spread": {"accuracy_all": {"mean": 0.68, "sd": 0.02, "min": 0.66, "max": 0.7}}}}
    transfer.write_text(json.dumps({"quick": False, "finished_at": "2026-11-26T00:00:00Z", "chosen_features": "x",
                                    "schedules": ["even4", "log3"],
                                    "targets": [{"target": "foreign sgdm/adam/fa/ia >= 0.95", "measured": 0.5}],
                                    "foreign": foreign, "in_distribution": within}))
    card = train_default(str(tiny_store), directory / "model", transfer_results=transfer, sweep="tiny.yaml",
                         schedules=["even4", "log3"], calibration_folds=3, reach=True)
    return directory / "model", card


@pytest.fixture(scope="module")
def recordings(tiny_store, tmp_path_factory):
    """Two runs of the tiny store exported as raw recordings into one directory (not a store)."""
    store = Store(tiny_store)
    directory = tmp_path_factory.mktemp("recordings")
    chosen = {}
    for manifest in store.manifests():
        chosen.setdefault(manifest["spec"]["rule"]["name"], manifest["run_id"])
    for rule in ("sgdm", "adam"):
        export_recording(store, directory / f"{rule}.npz", run_id=chosen[rule])
    return directory, {chosen["sgdm"]: "sgdm", chosen["adam"]: "adam"}


def test_build_writes_every_variant_and_a_card(built, tiny_store):
    directory, card = built
    # Built with update reach, which the tiny store recorded: each whole variant that reads weights has a second
    # model with it.
    assert list(card["variants"]) == list(VARIANTS + PARTIAL_VARIANTS + REACH_VARIANTS)
    assert list(REACH_VARIANTS) == ["weight,act,actchange,reach", "weight,act,reach", "weight,reach"]
    assert card["features"]["reach"] is True
    for name, variant in card["variants"].items():
        sidecar = json.loads((directory / f"{variant['model']}.json").read_text())
        assert sidecar["feature_options"]["subset"] == name.removeprefix("partial:")
        assert 0.0 <= sidecar["prediction_sets"]["threshold"] <= 1.0 and sidecar["prediction_sets"]["coverage"] == 0.9
        assert sidecar["prediction_sets"]["points"] == 6
        # Each variant's sets, calibrated on the tiny zoo's runs by fits in folds without them ...
        assert sidecar["prediction_sets"]["runs"] == 24
        # ... and one threshold for runs at 3 and at 4 points, on the runs' copies at log3 and even4.
        assert [(entry["points"], entry["runs"]) for entry in sidecar["prediction_sets"]["by_points"]] == [(3, 24), (4, 24)]
        assert [entry["points"] for entry in card["prediction_sets"]["in_zoo"][name]["by_points"]] == [3, 4]
        at_layers = [(entry["layers"], entry["runs"]) for entry in sidecar["prediction_sets"]["by_layers"]]
        if name in PARTIAL_VARIANTS:
            # trained on every run also seen at its hidden layers and at one of them, and a threshold for each,
            # calibrated on those 24 copies by fits in folds without their run
            assert sidecar["partial_layers"] == variant["partial_layers"] == ["hidden", "single"]
            assert at_layers == [("hidden", 24), ("single", 24)]
            assert [entry["layers"] for entry in card["prediction_sets"]["in_zoo"][name]["by_layers"]] == ["hidden", "single"]
        else:
            assert sidecar["partial_layers"] == [] and at_layers == []
    assert {key: card["prediction_sets"][key] for key in ("coverage", "calibration_folds")} == {
        "coverage": 0.9, "calibration_folds": 3}
    assert list(card["prediction_sets"]["in_zoo"]) == list(card["variants"])
    assert all(entry["held"] >= 0.9 and 1 <= entry["mean_size"] <= 4 for entry in card["prediction_sets"]["in_zoo"].values())
    # Only this classifier's measured set coverage is quoted.
    assert [row["coverage"] for row in card["transfer"]["prediction_sets"]] == [0.8, 0.33, 0.5]
    assert card["rules"] == ["adam", "fa", "ia", "sgdm"]
    assert card["training"]["runs"] == len(Store(tiny_store).manifests())
    assert card["training"]["runs_per_rule"] == {"adam": 6, "fa": 6, "ia": 6, "sgdm": 6}
    # The tiny store's specs omit the initialisation and input options: all at their defaults.
    assert card["training"]["initialisations"] == {"glorot/uniform": 24}
    assert card["training"]["inputs"] == {"[0, 1]": 24}
    assert any("initialisations {'glorot/uniform': 24}" in line for line in describe_card(card))
    assert card["transfer"]["targets"][0]["measured"] == 0.5
    text = "\n".join(describe_card(card))
    assert "adam, fa, ia, sgdm" in text and "foreign sgdm/adam/fa/ia >= 0.95: 0.500" in text
    assert ("partial: for recordings of some of a network's layers, trained on every run also seen at its hidden layers "
            "(no readout) and at one hidden layer alone") in text
    assert "weight,act,actchange,reach, weight,act,reach, weight,reach: the same with update reach" in text
    # the sets' sizes in the zoo: as recorded, at fewer points, and for the partial variants at some layers
    assert re.search(r"partial:act \d\.\d \(\d\.\d at 3, \d\.\d at 4 points; \d\.\d hidden, \d\.\d single layers\)", text)
    assert re.search(r"; act \d\.\d \(\d\.\d at 3, \d\.\d at 4 points\);", text)
    assert "0.700 named right, 0.500 of those trained by sgdm/adam/fa/ia (0.750 with --rules sgdm,adam,fa,ia)" in text
    # The zoo's own held-out splits are the ceiling the foreign figures are read against; other classifiers' rows stay off.
    assert "in its own zoo (10 held-out splits), trained on the paper's four rules only: 0.730 +- 0.010 named right; ia 0.55 (else read as fa)" \
        "; fa 0.60 (else read as ia)" in text
    assert "0.100" not in text
    assert "by the probability of the answer over all its rules: >= 0.5: 0.80 right (60% of them); >= 0.7: 1.00" in text
    assert "answer with --rules" not in text  # that question was not measured here
    # Each answer is read against the band its probability reaches (another classifier's bands are ignored).
    bands = [measured_band(card, p) for p in (0.2, 0.5, 0.69, 0.95)]
    assert [(band["accuracy"], band["networks"]) for band in bands] == [(0.7, 10), (0.8, 6), (0.8, 6), (1.0, 3)]
    assert measured_band(card, 0.95, ["adam", "fa", "ia", "sgdm"]) is None
    # trained on every run as recorded and re-recorded at fewer checkpoints, and measured so
    assert card["training"]["schedules"] == ["even4", "log3"] and "re-recorded at the checkpoint schedules even4, log3" in text
    assert "re-recorded at fewer checkpoints, named right over all rules: even4 0.65; log4 0.70; even3 0.60" in text
    assert "3 random zoos of 0.67 of its runs" in text and "all rules 0.55-0.65" in text and "fa,ia 0.60-0.80" in text
    # The same zoo fitted with other classifier seeds: the spread one fit's score sits in.
    assert "fitted with classifier seeds 1, 2 instead of this build's, foreign accuracy ranged: all rules 0.66-0.70" in text
    assert "0.70 of foreign networks" in reliability_note(card)
    assert "among sgdm, adam, fa and ia, 0.75 of foreign" in reliability_note(card, ["ia", "sgdm", "fa", "adam"])
    assert "0.70 of foreign networks" in reliability_note(card, ["sgdm", "adam"])  # not measured: the overall figure
    sized = {**card["transfer"], "zoo_draws": {**card["transfer"]["zoo_draws"], "runs": 969}}
    assert "3 random zoos of 969 runs instead" in "\n".join(describe_card({**card, "transfer": sized}))
    two_sets = {"transfer": {"foreign": [{**card["transfer"]["foreign"][0], "set": "s1"},
                                         {**card["transfer"]["foreign"][0], "set": "s2", "accuracy_all": 0.8}]}}
    assert "0.75 of foreign networks (20 in 2 sets" in reliability_note(two_sets)
    assert "set s2, 10 networks" in "\n".join(describe_card({**card, **two_sets, "transfer": {**card["transfer"],
                                                                                            **two_sets["transfer"]}}))


@pytest.mark.parametrize("change", [{"quick": True}, {"schedules": ["even6"]},
                                    {"chosen_options": {"unit": "layer", "time": "index", "baseline": "none"}}])
def test_quick_or_other_schedules_or_other_features_transfer_results_stay_off_the_card(built, tmp_path, change):
    # A smoke run, or a measurement of an identifier trained on other checkpoint schedules or with other
    # features than this one: the built identifier's own result, with that one thing changed.
    import shutil

    directory, card = built
    assert card["transfer"] is not None  # train_default quoted the result as planted
    copy = tmp_path / "model"
    shutil.copytree(directory, copy)
    planted = json.loads((directory.parent / "transfer.json").read_text())
    transfer = tmp_path / "transfer.json"
    transfer.write_text(json.dumps({**planted, **change}))
    refreshed = refresh_transfer(copy, transfer)
    assert refreshed["transfer"] is None
    assert "not measured" in "\n".join(describe_card(refreshed))


def test_variant_follows_what_the_input_carries(tiny_store):
    observables = Store(tiny_store).read_observables()
    assert carried_measures(observables) == ("weight", "act", "actchange")
    assert variant_for(observables) == "weight,act,actchange"
    weights_only = observables.copy()
    weights_only[[c for c in observables if c.startswith(("act_", "actchange_"))]] = np.nan
    assert variant_for(weights_only) == "weight"
    nothing = observables.copy()
    nothing[[c for c in observables if c.startswith(("weight_", "act_"))]] = np.nan
    with pytest.raises(LridError, match="needs weight or act"):
        variant_for(nothing)


def test_a_recording_of_some_layers_goes_to_the_partial_variant_of_its_measures(built, recordings, tmp_path, monkeypatch):
    import warnings

    from typer.testing import CliRunner

    from lrid.cli import app
    from lrid.identify.recording import Recording, load_recordings, write_recording

    directory, card = built
    folder, truth = recordings
    (whole,) = load_recordings(folder / "adam.npz")
    layers = whole.layers[:2]  # the hidden layers, not the readout
    arrays = {kind: {layer: whole.arrays[kind][layer] for layer in layers} for kind in ("weight", "act")}
    path = write_recording(Recording("lab", whole.steps, layers, arrays, None, [0, 1], 3), tmp_path / "lab.npz")
    observables = read_input(path)
    assert variant_for(observables, card["variants"]) == "partial:weight,act"
    assert variant_for(observables) == "weight,act"  # an identifier without partial variants
    acts = observables.copy()
    acts[[c for c in acts if c.startswith("weight_")]] = np.nan
    assert variant_for(acts, card["variants"]) == "partial:act"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a partial variant has seen such recordings: nothing to warn of
        named, variant = identify_default(observables, directory)
    assert variant == "partial:weight,act" and named["run_id"].tolist() == ["lab"] and "prediction_set" in named
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(directory))
    result = CliRunner().invoke(app, ["identify", str(path)])
    assert result.exit_code == 0, result.output
    assert "default identifier (partial:weight,act)" in result.output and "warning" not in result.output
    # the card's foreign figures of whole networks are not quoted for this one; those of networks recorded at
    # some layers, by identifiers trained as this model is, are
    said = " ".join(result.output.split())
    assert ("its transfer benchmark named foreign networks recorded so right over all their rules: 0.55 at their "
            "hidden layers, 0.30-0.40 at one hidden layer alone (20 networks)") in said
    assert "benchmark 0." not in result.output and "of foreign networks" not in result.output
    about = " ".join(CliRunner().invoke(app, ["identify", "--about"]).output.split())
    assert ("foreign networks recorded at some of their layers, named right over all rules by identifiers trained as "
            "the partial models are: partial:weight,act 0.55 at their hidden layers, 0.30-0.40 at one hidden layer "
            "alone (20 networks); partial:act 0.45 at their hidden layers, 0.35 at one hidden layer alone") in about
    # a card without such figures (a build from before them) says the benchmark measured whole networks
    assert "transfer benchmark measured whole networks" in partial_note("partial:act", {"transfer": None})


def test_only_the_named_variants_are_refitted_and_the_rest_kept(built, tiny_store, tmp_path):
    import shutil

    directory, card = built
    copy = tmp_path / "model"
    shutil.copytree(directory, copy)
    kept = next(path for path in copy.glob("act.*") if path.suffix != ".json")
    kept.unlink()  # a kept variant is not refitted, nor rewritten
    (copy / "partial-act.json").write_text("{}")
    refitted = train_default(str(tiny_store), copy, sweep="tiny.yaml", schedules=["even4", "log3"], calibration_folds=3,
                             only=["partial:act"])
    assert refitted["variants"] == card["variants"] and refitted["prediction_sets"] == card["prediction_sets"]
    assert not kept.exists()
    assert (copy / "partial-act.json").read_text() == (directory / "partial-act.json").read_text()
    with pytest.raises(LridError, match="unknown variant 'partial:weight'; variants are weight,act,actchange"):
        train_default(str(tiny_store), copy, sweep="tiny.yaml", only=["partial:weight"])


def test_default_identifier_names_the_rules_of_a_directory_of_recordings(built, recordings):
    directory, _ = built
    folder, truth = recordings
    observables = read_input(folder)
    assert set(observables["run_id"]) == set(truth)
    predictions, variant = identify_default(observables, directory)
    assert variant == "weight,act,actchange,reach"  # MLPs: a reach under the readout
    assert len(predictions) == 2 and set(predictions["predicted"]) <= {"adam", "fa", "ia", "sgdm"}
    # Each run's prediction set: its answer first, then every rule at or above the variant's threshold.
    model = read_card(directory)["variants"][variant]["model"]
    threshold = json.loads((directory / f"{model}.json").read_text())["prediction_sets"]["threshold"]
    assert (predictions["set_coverage"] == 0.9).all()
    for _, row in predictions.iterrows():
        rules = row["prediction_set"].split(",")
        assert rules[0] == row["predicted"]
        assert set(rules[1:]) == {r for r in ("adam", "fa", "ia", "sgdm") if r != row["predicted"] and row[r] >= threshold}


def test_identify_without_a_model_from_the_command_line(built, recordings, tmp_path):
    directory, _ = built
    folder, truth = recordings
    environment = {**__import__("os").environ, DIRECTORY_VARIABLE: str(directory)}
    output = tmp_path / "predictions.csv"
    result = subprocess.run([sys.executable, "-m", "lrid.cli", "identify", str(folder), "--output", str(output)],
                            capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "default identifier (weight,act,actchange,reach)" in result.stdout
    assert "benchmark" in result.stdout and "named at least as confidently, the share named right" in result.stdout
    assert any(cell in result.stdout for cell in ("0.70 of 10", "0.80 of 6", "1.00 of 3"))
    assert sorted(output.read_text().splitlines()[1:]) and len(output.read_text().splitlines()) == 3
    assert "prediction_set" in output.read_text().splitlines()[0]
    assert "at 90%" in result.stdout and "the rules it cannot rule out" in result.stdout
    assert "of 10 foreign networks (another implementation), 0.80 with 1.7 rules on average" in result.stdout
    assert "recorded points per network" not in result.stdout  # recorded as the zoo was
    about = subprocess.run([sys.executable, "-m", "lrid.cli", "identify", "--about"], capture_output=True, text=True,
                           env=environment, timeout=120)
    assert about.returncode == 0 and "rules (4): adam, fa, ia, sgdm" in about.stdout, about.stderr
    assert "prediction sets at 90%" in about.stdout and "held the true rule for 0.80 of 10" in about.stdout
    assert "a threshold each) at fewer checkpoints" in about.stdout and " at 3, " in about.stdout and " at 4 points)" in about.stdout
    assert "0.33" not in about.stdout and "for 0.50 of" not in about.stdout
    assert "their prediction sets re-recorded at fewer checkpoints, over all rules (held, rules on average): even4 0.50, 2.0" in about.stdout


def test_a_recording_with_few_checkpoints_is_identified_with_what_the_benchmark_measured_at_as_few(built, recordings,
                                                                                                  tmp_path):
    directory, _ = built
    folder, _ = recordings
    arrays = dict(np.load(folder / "sgdm.npz"))
    kept = [0, 2, 5]  # 3 of the 6 recorded points
    sparse = {key: value[kept] if key in ("steps", "epoch") or key.startswith(("weight/", "act/", "actchange/"))
              else value for key, value in arrays.items()}
    np.savez(tmp_path / "sparse.npz", **sparse)
    environment = {**__import__("os").environ, DIRECTORY_VARIABLE: str(directory)}
    result = subprocess.run([sys.executable, "-m", "lrid.cli", "identify", str(tmp_path / "sparse.npz")],
                            capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "this input has 3 recorded points per network (its zoo 6)" in result.stdout
    assert "even3 were named 0.60 right" in result.stdout
    # The sets' note quotes the foreign networks re-recorded at the nearest number of points, not as recorded.
    assert "of 10 foreign networks (another implementation), 0.50 with 2.0 rules on average re-recorded at even4" in (
        result.stdout.replace("\n", " "))


def test_identify_among_candidate_rules_from_the_command_line(built, recordings):
    directory, _ = built
    folder, _ = recordings
    environment = {**__import__("os").environ, DIRECTORY_VARIABLE: str(directory)}
    command = [sys.executable, "-m", "lrid.cli", "identify", str(folder)]
    result = subprocess.run([*command, "--rules", "adam,sgdm"], capture_output=True, text=True, env=environment,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert "among adam, sgdm" in result.stdout and " fa " not in result.stdout
    bad = subprocess.run([*command, "--rules", "adam,hebb"], capture_output=True, text=True, env=environment,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "hebb are not among the model's rules (adam, fa, ia, sgdm)" in bad.stderr


def test_missing_default_identifier_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(tmp_path / "none"))
    with pytest.raises(LridError, match="no default identifier .*make default-identifier"):
        read_card()


def test_directory_with_two_recordings_of_one_run_name_is_refused(recordings, tmp_path):
    import shutil

    folder, _ = recordings
    twice = tmp_path / "twice"
    twice.mkdir()
    source = sorted(folder.glob("*.npz"))[0]
    shutil.copy(source, twice / "a.npz")
    shutil.copy(source, twice / "b.npz")
    with pytest.raises(LridError, match="is in both a.npz and b.npz"):
        read_input(twice)


def test_the_shipped_identifier_was_built_with_the_default_features_in_every_variant():
    # DEFAULT_FEATURES changed without `make default-identifier` would leave a shipped model of other features.
    from lrid.identify.default_identifier import DEFAULT_DIRECTORY, DEFAULT_FEATURES, model_path

    # It ships with the update-reach variants, which benchmarks/transfer.py --reach measured (its card says so).
    card = read_card(DEFAULT_DIRECTORY)
    shipped = VARIANTS + PARTIAL_VARIANTS + REACH_VARIANTS
    assert card["features"] == {**DEFAULT_FEATURES, "reach": True} and list(card["variants"]) == list(shipped)
    assert card["transfer"] is not None and card["transfer"]["foreign"]
    for variant in shipped:
        sidecar = json.loads(model_path(variant).with_suffix(".json").read_text())
        options = sidecar["feature_options"]
        assert options["subset"] == variant.removeprefix("partial:")
        assert {key: options.get(key) for key in DEFAULT_FEATURES} == DEFAULT_FEATURES, variant
        assert sidecar.get("partial_layers", []) == (["hidden", "single"] if variant in PARTIAL_VARIANTS else [])


def test_reliability_note_quotes_the_measured_foreign_accuracy():
    from lrid.identify.default_identifier import reliability_note

    card = {"transfer": {"foreign": [{"classifier": "rf", "accuracy_all": 0.625, "networks": 96}]}}
    assert "0.62 of foreign networks (96" in reliability_note(card)
    assert "not measured" in reliability_note({"transfer": None})


def test_a_newer_benchmark_is_quoted_on_the_card_without_refitting(built, tmp_path):
    import shutil

    directory, card = built
    copy = tmp_path / "model"
    shutil.copytree(directory, copy)
    models = {path.name: path.read_bytes() for path in copy.iterdir() if path.name != "card.json"}
    rerun = tmp_path / "transfer.json"
    rerun.write_text(json.dumps({"quick": False, "finished_at": "2026-12-01T00:00:00Z", "schedules": ["even4", "log3"],
                                 "targets": [{"target": "foreign, all its rules >= 0.85", "measured": 0.61}],
                                 "foreign": {"summary": []}}))
    command = [sys.executable, "scripts/build_default_identifier.py", "--card-only", "--out", str(copy),
               "--transfer", str(rerun)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    refreshed = read_card(copy)
    assert refreshed["transfer"]["finished_at"] == "2026-12-01T00:00:00Z"
    assert refreshed["transfer"]["targets"] == [{"target": "foreign, all its rules >= 0.85", "measured": 0.61}]
    assert {key: value for key, value in refreshed.items() if key != "transfer"} == {
        key: value for key, value in card.items() if key != "transfer"}
    assert {path.name: path.read_bytes() for path in copy.iterdir() if path.name != "card.json"} == models
    assert "foreign, all its rules >= 0.85: 0.610" in result.stdout
    # A benchmark of an identifier trained on other schedules says nothing about this one.
    rerun.write_text(json.dumps({"quick": False, "schedules": ["even6"], "targets": [], "foreign": {}}))
    assert subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO).returncode == 0
    assert read_card(copy)["transfer"] is None


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("with_sets", [False, True])
def test_identify_table_keeps_every_cell_whole_at_any_terminal_width(width, with_sets, monkeypatch):
    import pandas as pd
    from rich.console import Console

    from lrid import cli

    rules = ["adam", "dtp", "fa", "ia", "np", "np_wn", "sdtp", "sgd", "sgdm", "ss"]
    probabilities = np.full((2, len(rules)), 0.02)
    probabilities[0, [2, 3]] = [0.5, 0.34]  # fa, then ia
    probabilities[1, [8, 7]] = [0.6, 0.24]  # sgdm, then sgd
    predictions = pd.DataFrame(probabilities, columns=rules).assign(
        run_id=["foreign-s1-0002", "foreign-s1-0003"], predicted=["fa", "sgdm"]
    )
    sets = ["fa,ia", "sgdm,sgd,adam,ss"] if with_sets else None
    benchmark = ["0.91 of 181", "0.75 of 327"] if with_sets else None
    if with_sets:
        predictions["prediction_set"] = sets
    monkeypatch.setattr(cli, "console", Console(width=width, record=True))
    set_column = "at 90%" if with_sets else None
    every_rule = cli._every_probability_fits(predictions, rules, benchmark, set_column)
    cli.console.print(cli._prediction_table(predictions, rules, "t", every_rule, benchmark, set_column))
    text = cli.console.export_text()
    assert "…" not in text and "foreign-s1-0002" in text and "foreign-s1-0003" in text
    if width == 80 and with_sets:  # the set names the other rules in play: no runner-up column beside it
        assert "runner-up" not in text and "fa, ia" in text and "0.500" in text and "0.91 of 181" in text
    elif width == 80:  # ten probability columns would be cut short: the winner's and the runner-up's instead
        assert "runner-up" in text and "ia 0.340" in text and "sgd 0.240" in text and "0.500" in text
    else:
        assert "runner-up" not in text and all(rule in text for rule in rules) and "0.340" in text
        assert ("sgdm, sgd, adam, ss" in text) == with_sets


def test_an_input_with_fewer_checkpoints_than_the_zoo_is_told_what_the_benchmark_measured_at_as_few(built, tiny_store):
    from lrid.identify.default_identifier import schedule_note
    from lrid.identify.schedules import at_schedule

    _, card = built
    observables = Store(tiny_store).read_observables()
    assert card["training"]["points"] == 6 and schedule_note(card, observables) is None
    note = schedule_note(card, at_schedule(observables, "log4"))
    assert note.startswith("default identifier: this input has 4 recorded points per network (its zoo 6)")
    assert "even4 were named 0.65 right and log4 were named 0.70 right" in note and "0.40" not in note
    assert "even3 were named 0.60 right" in schedule_note(card, at_schedule(observables, "even2"))
    assert schedule_note({**card, "transfer": None}, at_schedule(observables, "even2")) is None


def test_foreign_conv_figures_are_quoted_on_the_card_and_told_to_a_recording_with_conv_layers(built, tmp_path):
    import shutil

    from lrid.identify.default_identifier import conv_note, quote_foreign_conv

    directory, card = built
    copy = tmp_path / "model"
    shutil.copytree(directory, copy)
    models = {path.name: path.read_bytes() for path in copy.iterdir() if path.name != "card.json"}
    rows = [{"cut": "whole", "measures": variant, "variant": variant, "networks": 200, "named_right": named,
             "paper_among_four": 0.7, "sets_held": 0.85, "mean_set_size": 2.2}
            for variant, named in (("weight,act,actchange", 0.64), ("weight,act", 0.65), ("act", 0.55))]
    rows.append({**rows[0], "cut": "hidden", "variant": "partial:weight,act"})  # cuts are not quoted
    # Conv nets named partly by a variant's reach twin are quoted by the measures they carry.
    rows[0]["variant"] = "weight,act,actchange,reach for 53 runs; weight,act,actchange for 147 runs"
    results = tmp_path / "shipped_identifier.json"
    results.write_text(json.dumps({"sets": ["a", "b"], "architectures": {"dense": 200}, "rows": rows}))
    with pytest.raises(LridError, match="measurement on conv nets alone"):  # MLPs' figures are the card's own
        quote_foreign_conv(copy, results)
    results.write_text(json.dumps({"sets": ["a", "b"], "architectures": {"conv": 200},
                                   "finished_at": "2026-11-28T00:00:00Z", "rows": rows}))
    command = [sys.executable, "scripts/build_default_identifier.py", "--foreign-conv", str(results), "--out", str(copy)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "foreign conv nets (2 sets of another implementation" in result.stdout
    assert "weight,act,actchange 0.640 named right (0.700 with --rules), sets held 0.85 with 2.2 rules (200 networks)" in result.stdout
    quoted = read_card(copy)
    assert list(quoted["foreign_conv"]["by_variant"]) == ["weight,act,actchange", "weight,act", "act"]
    assert {key: value for key, value in quoted.items() if key != "foreign_conv"} == card
    assert {path.name: path.read_bytes() for path in copy.iterdir() if path.name != "card.json"} == models
    note = conv_note("weight,act", quoted, 3)
    assert "this input has 3 networks with conv layers" in note and "named 0.65 correctly (0.70 among sgdm" in note
    assert "held the true rule for 0.85 of them" in note
    assert "named 0.64 correctly" in conv_note("weight,act,actchange,reach", quoted, 1)
    assert conv_note("weight,act", quoted, 0) is None and conv_note("partial:act", quoted, 3) is None
    assert conv_note("weight,act", card, 3) is None  # a card without the measurement says nothing

    # lrid identify on a recording with a conv layer (weights and activations) tells it.
    rng = np.random.default_rng(0)
    steps = 4
    recording = tmp_path / "conv.npz"
    np.savez(recording, steps=np.arange(steps) * 10, layers=np.array(["conv1", "readout"]),
             **{"weight/conv1": rng.normal(size=(steps, 3, 3, 1, 4)), "act/conv1": rng.normal(size=(steps, 16, 8, 8, 4)),
                "weight/readout": rng.normal(size=(steps, 256, 10)), "act/readout": rng.normal(size=(steps, 16, 10))})
    environment = {**__import__("os").environ, DIRECTORY_VARIABLE: str(copy)}
    identified = subprocess.run([sys.executable, "-m", "lrid.cli", "identify", str(recording)], capture_output=True,
                                text=True, env=environment, timeout=300)
    assert identified.returncode == 0, identified.stderr
    assert "default identifier (weight,act)" in identified.stdout
    assert "this input has 1 network with conv layers" in " ".join(identified.stdout.split())
    assert read_input(recording)["arch"].unique().tolist() == ["conv"]
    dense = tmp_path / "dense.npz"
    np.savez(dense, steps=np.arange(steps), **{"weight/readout": rng.normal(size=(steps, 64, 10)),
                                                "act/readout": rng.normal(size=(steps, 16, 10))})
    assert read_input(dense)["arch"].unique().tolist() == ["dense"]


def test_an_input_of_whole_and_partial_recordings_names_each_run_by_the_model_for_what_it_holds(built, recordings,
                                                                                                 tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from lrid.cli import app
    from lrid.identify.recording import Recording, load_recordings, write_recording

    directory, _ = built
    folder, _ = recordings
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(folder / "sgdm.npz", mixed / "whole.npz")
    (adam,) = load_recordings(folder / "adam.npz")
    arrays = {kind: {layer: adam.arrays[kind][layer] for layer in adam.layers[:2]} for kind in ("weight", "act")}
    write_recording(Recording("lab", adam.steps, adam.layers[:2], arrays, None, [0, 1], 3), mixed / "lab.npz")
    named, variant = identify_default(read_input(mixed), directory)
    assert variant == "weight,act,actchange,reach for 1 run; partial:weight,act for 1 run"
    by_run = named.set_index("run_id")
    assert by_run.loc["lab", "variant"] == "partial:weight,act"
    # Each run is named as it would be alone: the whole network by the whole-network model.
    for path in (mixed / "whole.npz", mixed / "lab.npz"):
        alone, alone_variant = identify_default(read_input(path), directory)
        (run,) = alone["run_id"]
        assert by_run.loc[run, "variant"] == alone_variant
        assert by_run.loc[run].drop("variant").equals(alone.set_index("run_id").loc[run].drop("variant"))
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(directory))
    said = " ".join(CliRunner().invoke(app, ["identify", str(mixed)]).output.split())
    assert "default identifier (weight,act,actchange,reach for 1 run; partial:weight,act for 1 run)" in said
    assert "were named correctly in its benchmark" in said  # the whole network's figures
    assert "named foreign networks recorded so right over all their rules: 0.55 at their hidden layers" in said


def test_a_run_without_a_reach_under_its_readout_is_named_by_the_variant_without_it(built, recordings):
    directory, _ = built
    folder, truth = recordings
    observables = read_input(folder)
    sgdm = next(run for run, rule in truth.items() if rule == "sgdm")
    # As a conv net whose readout reads several positions, in a recording that does not say its flatten order.
    under_readout = observables["layer_index"] == observables["layer_index"].max() - 1
    blanked = observables.copy()
    blanked.loc[under_readout & (blanked["run_id"] == sgdm), "reach"] = np.nan
    assert top_reach_present(blanked).to_dict() == {run: run != sgdm for run in truth}
    named, variant = identify_default(blanked, directory)
    assert variant == "weight,act,actchange,reach for 1 run; weight,act,actchange for 1 run"
    assert named.set_index("run_id").loc[sgdm, "variant"] == "weight,act,actchange"
    # The run is named as the variant without the reach names it alone.
    alone, alone_variant = identify_default(blanked[blanked["run_id"] == sgdm], directory)
    assert alone_variant == "weight,act,actchange"
    assert named.set_index("run_id").loc[sgdm].drop("variant").equals(alone.set_index("run_id").loc[sgdm].drop("variant"))


def test_an_identifier_with_update_reach_needs_a_zoo_that_recorded_it_and_one_without_fits_none(tiny_store, tmp_path):
    with pytest.raises(LridError, match="recorded no update reach; regenerate its runs with this lrid"):
        train_default(str(REPO / "data" / "sample_store"), tmp_path / "old", sweep="sample.yaml", reach=True)
    plain = train_default(str(tiny_store), tmp_path / "plain", sweep="tiny.yaml", schedules=[], calibration_folds=2,
                          only=None)
    assert list(plain["variants"]) == list(VARIANTS + PARTIAL_VARIANTS) and "reach" not in plain["features"]


def test_the_build_script_fits_the_reach_variants_when_the_transfer_benchmark_measured_them(
    built, tiny_store, tiny_sweep_file, tmp_path
):
    """make default-identifier builds what benchmarks/transfer.py measured: its --reach run's features carry
    ``reach``, and the build then fits the reach variants (here one, refitted) and quotes the benchmark."""
    import shutil

    directory, card = built
    copy = tmp_path / "model"
    shutil.copytree(directory, copy)
    measured = tmp_path / "transfer.json"
    measured.write_text(json.dumps({"quick": False, "finished_at": "2026-12-02T00:00:00Z", "schedules": ["even4", "log3"],
                                    "chosen_options": {**card["features"]}, "targets": [], "foreign": {"summary": []}}))
    command = [sys.executable, "scripts/build_default_identifier.py", "--store", str(tiny_store), "--sweep",
               str(tiny_sweep_file), "--classifier", "linear", "--out", str(copy), "--transfer", str(measured),
               "--variants", "weight,reach"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr
    rebuilt = read_card(copy)
    assert list(rebuilt["variants"]) == list(card["variants"])
    assert rebuilt["features"] == card["features"] and rebuilt["features"]["reach"] is True
    assert rebuilt["transfer"]["finished_at"] == "2026-12-02T00:00:00Z"
    # A benchmark without the reach measured the identifier without those variants: none to refit.
    measured.write_text(json.dumps({"quick": False, "schedules": ["even4", "log3"], "targets": [], "foreign": {},
                                    "chosen_options": {key: value for key, value in card["features"].items()
                                                       if key != "reach"}}))
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode != 0 and "unknown variant 'weight,reach'" in result.stderr
