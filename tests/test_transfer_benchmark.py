"""The transfer benchmark's nuisance factors: every run gets a level, specs that omit a field read as its default."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks.transfer import FACTORS
from lrid.errors import LridError


def _metadata() -> pd.DataFrame:
    # As run_metadata flattens manifests: a field a spec omits (at its default) is NaN for that run.
    return pd.DataFrame({
        "rule": ["fa", "sgd", "ia", "fa"],
        "arch": ["mlp", "mlp", "convnet", "mlp"],
        "model.init": ["he", np.nan, "lecun", np.nan],
        "model.init_distribution": [np.nan, "untruncated_normal", "truncated_normal", np.nan],
        "model.init_scale": [2.0, np.nan, 0.6, np.nan],
        "task.options.standardize": [True, np.nan, False, np.nan],
    })


def test_initialisation_and_input_factors_read_omitted_fields_as_their_defaults():
    metadata = _metadata()
    assert FACTORS["init"](metadata).tolist() == ["he/uniform", "glorot/untruncated_normal", "lecun/truncated_normal",
                                                  "glorot/uniform"]
    assert FACTORS["input"](metadata).tolist() == ["standardised", "[0, 1]", "[0, 1]", "[0, 1]"]
    assert FACTORS["init_scale"](metadata).tolist() == [">1.25", "0.8-1.25", "<=0.8", "0.8-1.25"]


def test_a_zoo_made_before_the_initialisation_fields_is_one_level_of_each():
    metadata = _metadata().drop(columns=["model.init", "model.init_distribution", "task.options.standardize"])
    assert set(FACTORS["init"](metadata)) == {"glorot/uniform"}
    assert set(FACTORS["input"](metadata)) == {"[0, 1]"}


def test_foreign_accuracies_score_each_way_of_naming_on_its_own_networks():
    from benchmarks.transfer import foreign_accuracies

    labels = pd.DataFrame({"rule": ["sgdm", "sgdm", "fa", "np"]}, index=["a", "b", "c", "d"])
    predictions = pd.DataFrame({"all": ["sgd", "sgdm", "fa", "np_wn"],
                                "paper candidates": ["sgdm", "sgdm", "ia", "sgdm"],
                                "paper identifier": ["sgdm", "adam", "fa", "fa"]}, index=["a", "b", "c", "d"])
    assert foreign_accuracies(predictions, labels) == {
        "accuracy_all": 0.5,  # b and c of all four
        "accuracy_paper_rules": 2 / 3,  # np's network d is not one of the paper's rules
        "accuracy_paper_candidates": 2 / 3,
        "accuracy_paper_identifier": 2 / 3,
    }


def test_a_sweep_picks_its_runs_out_of_a_larger_store(tiny_store, tiny_sweep_file, tmp_path):
    from benchmarks.transfer import load_zoo

    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(tiny_sweep_file.read_text().replace("model_seed: [0, 1, 2]", "model_seed: [0, 2]"))
    observables, metadata = load_zoo(str(tiny_store), sweep=str(smaller))
    assert len(metadata) == 16 and set(observables["run_id"]) == set(metadata.index)
    assert sorted(metadata["train.model_seed"].unique()) == [0, 2]
    everything, all_metadata = load_zoo(str(tiny_store))
    assert len(all_metadata) == 24 and len(everything) > len(observables)


def test_several_foreign_sets_are_judged_by_their_mean():
    from benchmarks.transfer import mean_over_sets

    rows = [{"set": "a", "accuracy_all": 0.6, "accuracy_paper_rules": 0.5, "accuracy_paper_candidates": 0.7,
             "accuracy_paper_identifier": 0.8},
            {"set": "b", "accuracy_all": 0.8, "accuracy_paper_rules": None, "accuracy_paper_candidates": None,
             "accuracy_paper_identifier": None}]  # a set without the paper's rules counts only for all rules
    assert mean_over_sets(rows) == {"accuracy_all": 0.7, "accuracy_paper_rules": 0.5, "accuracy_paper_candidates": 0.7,
                                    "accuracy_paper_identifier": 0.8}


def test_in_distribution_reports_each_rules_recall_over_balanced_splits(tiny_store):
    from benchmarks.transfer import CONFIGS, in_distribution, load_zoo

    observables, _ = load_zoo(str(tiny_store))
    within = in_distribution(observables, CONFIGS[3], "linear", 3, 1, rules=("adam", "sgdm"), rule_set="two")
    assert within["rules"] == "two" and len(within["accuracies"]) == 3
    assert set(within["recall"]) == {"adam", "sgdm"}
    # Balanced splits test every rule on as many runs, so the mean recall is the mean accuracy.
    assert np.isclose(np.mean(list(within["recall"].values())), within["mean"], atol=1e-3)
    assert set(within["most_mistaken_for"]) <= {"adam", "sgdm"}
    assert all(within["most_mistaken_for"][rule] != rule for rule in within["most_mistaken_for"])


def test_each_held_out_level_says_what_its_runs_were_read_as_and_the_worst_level_is_listed(tiny_store):
    from benchmarks.transfer import CONFIGS, leave_one_level_out, load_zoo, worst_level_readings
    from lrid.identify.features import build_features

    observables, metadata = load_zoo(str(tiny_store))
    # The tiny sweep varies only seeds: hold out each model seed in turn (every level holds every rule).
    metadata = metadata.assign(**{"factor.seed": metadata["train.model_seed"]})
    features = build_features(observables, **CONFIGS[3].options())
    rows = leave_one_level_out(features, metadata, "seed", "linear", 1)
    assert [row["level"] for row in rows] == ["0", "1", "2"]
    for row in rows:
        assert set(row["read_as"]) == {"adam", "fa", "ia", "sgdm"}
        counts = {rule: dict((name, int(n)) for name, n in (part.rsplit(" ", 1) for part in text.split(", ")))
                  for rule, text in row["read_as"].items()}
        assert sum(sum(named.values()) for named in counts.values()) == row["n_test_runs"] == 8
        named_right = sum(named.get(rule, 0) for rule, named in counts.items())
        assert named_right == round(row["run_accuracy"] * row["n_test_runs"])
    worst = min(rows, key=lambda row: row["run_accuracy"])
    readings = worst_level_readings([{"rules": "paper 4", **row} for row in rows])
    assert {reading["level"] for reading in readings} == {f"seed={worst['level']}"}
    assert {reading["rule"]: reading["read_as"] for reading in readings} == worst["read_as"]


def test_every_foreign_set_is_named_and_scored_per_rule(tiny_store):
    from benchmarks.transfer import CONFIGS, ForeignSet, foreign, load_zoo

    observables, metadata = load_zoo(str(tiny_store))
    # Two "foreign" sets cut from the tiny store's own runs: each is scored on its own networks only.
    sets = []
    for name, runs in (("first", metadata.index[::2]), ("second", metadata.index[1::2])):
        labels = metadata.loc[runs, ["rule"]].assign(final_test_accuracy=1.0)
        sets.append(ForeignSet(name, labels, observables[observables["run_id"].isin(runs)], 0.0))
    rows, summaries, bands = foreign(observables, CONFIGS[3], "linear", sets, 1)
    assert [summary["set"] for summary in summaries] == ["first", "second"]
    assert [summary["networks"] for summary in summaries] == [12, 12]
    for foreign_set in sets:
        per_rule = [row for row in rows if row["set"] == foreign_set.name]
        assert {row["rule"] for row in per_rule} == set(foreign_set.labels["rule"])
        assert sum(row["networks"] for row in per_rule) == len(foreign_set.labels)
        assert all("paper_identifier_accuracy" in row for row in per_rule)  # the tiny store holds the paper's rules
    # Every answer is in the lowest band; higher bands hold fewer networks, each band's share of them.
    for naming, total in (("all", 24), ("paper candidates", 24)):
        of_naming = [band for band in bands if band["naming"] == naming]
        assert of_naming[0]["at_least"] == 0.0 and of_naming[0]["networks"] == total and of_naming[0]["coverage"] == 1.0
        counts = [band["networks"] for band in of_naming]
        assert counts == sorted(counts, reverse=True)
        assert all(band["coverage"] == band["networks"] / total for band in of_naming)
    every_answer = next(band for band in bands if band["naming"] == "all" and band["at_least"] == 0.0)
    right = sum(summary["accuracy_all"] * summary["networks"] for summary in summaries)
    assert np.isclose(every_answer["accuracy"] * 24, right)


def test_foreign_networks_are_scored_re_recorded_at_fewer_checkpoints(tiny_store):
    from benchmarks.transfer import CONFIGS, TEST_SCHEDULES, ForeignSet, by_schedule, foreign, load_zoo

    observables, metadata = load_zoo(str(tiny_store))  # 6 points per run
    sets = [ForeignSet(name, metadata.loc[runs, ["rule"]].assign(final_test_accuracy=1.0),
                       observables[observables["run_id"].isin(runs)], 0.0)
            for name, runs in (("first", metadata.index[::2]), ("second", metadata.index[1::2]))]
    rows = by_schedule(observables, CONFIGS[3], "linear", sets, 1, ["even4", "log3"])
    assert [(row["schedule"], row["trained_on"]) for row in rows] == [
        (schedule, trained_on) for schedule in ("as recorded", *TEST_SCHEDULES)
        for trained_on in ("as recorded", "+ even4,log3")]
    points = {row["schedule"]: row["points"] for row in rows}
    assert points["as recorded"] == 6 and points["even11"] == 6 and points["even4"] == 4 and points["even3"] == 3
    assert all(0.0 <= row["accuracy_all"] <= 1.0 and set(row["by_set"]) == {"first", "second"} for row in rows)
    # As recorded, the identifier trained as recorded is the one the foreign table scores.
    summaries = foreign(observables, CONFIGS[3], "linear", sets, 1)[1]
    assert np.isclose(rows[0]["accuracy_all"], np.mean([summary["accuracy_all"] for summary in summaries]))


def test_foreign_networks_are_scored_at_some_of_their_layers_by_identifiers_trained_whole_and_partially(tiny_store):
    from benchmarks.transfer import CONFIGS, ForeignSet, _at_layers, by_layers, load_zoo

    observables, metadata = load_zoo(str(tiny_store))  # 3 layers per network: 2 hidden, the readout
    sets = [ForeignSet(name, metadata.loc[runs, ["rule"]].assign(final_test_accuracy=1.0),
                       observables[observables["run_id"].isin(runs)], 0.0)
            for name, runs in (("first", metadata.index[::2]), ("second", metadata.index[1::2]))]
    hidden = _at_layers(sets[0].recordings, "hidden")
    assert sorted(hidden["layer_index"].unique()) == [0, 1] and set(hidden["depth_group"]) == {"early", "middle"}
    assert sorted(_at_layers(sets[0].recordings, "single:1")["layer_index"].unique()) == [1]
    assert _at_layers(sets[0].recordings, "single:2").empty
    rows = by_layers(observables, CONFIGS[8], "linear", sets, 1, [])
    # no network has a third hidden layer: its row is left out
    assert [(row["measures"], row["trained_on"], row["layers"]) for row in rows] == [
        (measures, trained_on, layers) for measures in ("weight,act", "act")
        for trained_on in ("whole networks", "+ hidden,single") for layers in ("whole", "hidden", "single:0", "single:1")]
    assert all(row["networks"] == 24 and set(row["by_set"]) == {"first", "second"} for row in rows)
    assert all(0.0 <= row["accuracy_all"] <= 1.0 and 0.0 <= row["accuracy_paper_candidates"] <= 1.0 for row in rows)


def test_foreign_prediction_sets_are_calibrated_on_the_zoo_and_scored_per_set_rule_and_schedule(tiny_store):
    from benchmarks.transfer import CONFIGS, TEST_SCHEDULES, ForeignSet, load_zoo, prediction_set_coverage

    observables, metadata = load_zoo(str(tiny_store))
    sets = [ForeignSet(name, metadata.loc[runs, ["rule"]].assign(final_test_accuracy=1.0),
                       observables[observables["run_id"].isin(runs)], 0.0)
            for name, runs in (("first", metadata.index[::2]), ("second", metadata.index[1::2]))]
    rows = prediction_set_coverage(observables, CONFIGS[3], "linear", sets, 1, ["even4"], folds=3)
    as_recorded = [row for row in rows if row["schedule"] == "as recorded" and row["rule"] is None]
    assert [(row["set"], row["naming"]) for row in as_recorded] == [
        ("first", "all"), ("first", "paper candidates"), ("second", "all"), ("second", "paper candidates"),
        ("pooled", "all"), ("pooled", "paper candidates")]
    # Each network's threshold is the one for the checkpoints it was recorded at: as recorded (6 points) at
    # 6 or more, else the one calibrated on the zoo's copies at 4 points (the fewest, so also at 3).
    thresholds = {schedule: {row["threshold"] for row in rows if row["schedule"] == schedule}
                  for schedule in ("as recorded", *TEST_SCHEDULES)}
    assert all(len(values) == 1 for values in thresholds.values())
    full = set().union(*(thresholds[s] for s in ("as recorded", "even11", "log11", "even6", "log6")))
    sparse = set().union(*(thresholds[s] for s in ("even4", "log4", "even3")))
    assert len(full) == 1 and len(sparse) == 1 and full != sparse and 0.0 <= min(full | sparse) <= max(full | sparse) <= 1.0
    for row in rows:
        assert 0.0 <= row["coverage"] <= 1.0 and 1.0 <= row["mean_size"] <= 4.0  # the tiny zoo has 4 rules
    pooled = next(row for row in as_recorded if row["set"] == "pooled" and row["naming"] == "all")
    assert pooled["networks"] == 24
    first, second = (next(r for r in as_recorded if r["set"] == name and r["naming"] == "all") for name in ("first", "second"))
    assert np.isclose(pooled["coverage"], (first["coverage"] + second["coverage"]) / 2)  # 12 networks each
    # Per rule, the pooled networks split by their true rule: 6 of each, and their coverages average to it.
    per_rule = [row for row in rows if row["rule"] is not None]
    assert [row["rule"] for row in per_rule] == ["adam", "fa", "ia", "sgdm"]
    assert all(row["networks"] == 6 for row in per_rule)
    assert np.isclose(np.mean([row["coverage"] for row in per_rule]), pooled["coverage"])
    # Re-recorded at each test schedule, the pooled networks again, over all rules and among the four.
    by_schedule = [row for row in rows if row["schedule"] != "as recorded"]
    assert [(row["schedule"], row["naming"]) for row in by_schedule] == [
        (schedule, naming) for schedule in TEST_SCHEDULES for naming in ("all", "paper candidates")]
    assert all(row["set"] == "pooled" and row["networks"] == 24 for row in by_schedule)


def test_a_network_given_no_paper_rule_any_probability_is_named_among_them_as_lrid_identify_names_it():
    """A random forest can give a network all its votes outside the paper's four rules (np, say): asked among
    those four, lrid identify gives each a quarter, and the benchmark must name it the same way, not fail."""
    from benchmarks.transfer import PAPER_RULES, _among_paper_rules

    every_rule = pd.DataFrame({"np": [1.0, 0.2], "sgdm": [0.0, 0.4], "adam": [0.0, 0.4], "fa": [0.0, 0.0],
                               "ia": [0.0, 0.0]}, index=["all votes np", "some paper votes"])
    among = _among_paper_rules(every_rule)
    assert list(among.columns) == list(PAPER_RULES)
    np.testing.assert_allclose(among.loc["all votes np"], 0.25)
    np.testing.assert_allclose(among.loc["some paper votes", ["sgdm", "adam"]], 0.5)
    assert among.notna().all().all() and among.idxmax(axis=1).notna().all()


def test_the_shipped_identifier_is_scored_on_foreign_conv_nets_whole_and_cut_as_a_lab_records(tmp_path, monkeypatch,
                                                                                              capsys):
    from benchmarks import harness, shipped_identifier
    from benchmarks.foreign import generate_networks

    assert shipped_identifier.cuts(["conv1", "conv2", "readout"]) == {
        "whole": [0, 1, 2], "hidden": [0, 1], "hidden 1 alone": [0], "hidden 2 alone": [1]}
    monkeypatch.setattr(harness, "RESULTS", tmp_path / "results")
    with pytest.raises(SystemExit, match="no labels.csv in"):
        shipped_identifier.main(["--foreign", str(tmp_path)])
    generate_networks(tmp_path / "conv", 2, seed=1, rules="sgdm,adam", arch="conv")
    shipped_identifier.main(["--foreign", str(tmp_path / "conv")])
    result = json.loads((tmp_path / "results/shipped_identifier.json").read_text())
    rows = {(row["cut"], row["measures"]): row for row in result["rows"]}
    # Each cut meets the model lrid identify would pick for it: whole networks the whole-network models (with
    # the update reach where the readout reads one position of an 8x8 digit strided down to 1x1, since the
    # recordings do not say how they flattened), layers placed in their networks the partial ones.
    strides = pd.read_csv(tmp_path / "conv" / "labels.csv")["strides"]
    one_position = int(sum(np.prod([int(s) for s in str(value).split("-")]) >= 8 for value in strides))
    named_by = {"weight,act,actchange,reach": one_position, "weight,act,actchange": 2 - one_position}
    expected = [f"{variant} for {n} run{'s' if n > 1 else ''}" for variant, n in named_by.items() if n]
    assert rows["whole", "weight,act,actchange"]["variant"] == (
        "; ".join(expected) if len(expected) > 1 else next(v for v, n in named_by.items() if n))
    assert rows["whole", "act"]["variant"] == "act"
    assert rows["hidden", "weight,act"]["variant"] == "partial:weight,act"
    assert rows["hidden 1 alone", "act"]["variant"] == "partial:act"
    assert result["networks"] == 2 and all(row["networks"] == 2 for (cut, _), row in rows.items() if cut != "hidden 3 alone")
    for row in rows.values():
        assert set(row["recall"]) <= {"sgdm", "adam"} and 0 <= row["named_right"] <= 1
        assert row["paper_networks"] == row["networks"] and 1 <= row["mean_set_size"] <= 10
    whole = rows["whole", "weight,act"]
    assert whole["named_right"] == pytest.approx(np.mean(list(whole["recall"].values())))  # one network per rule
    assert "The shipped identifier on foreign networks" in capsys.readouterr().out
    # Read as saying they flattened their maps channels-last (as benchmarks/foreign does), every readout has a
    # reach, and every network is named with it.
    shipped_identifier.main(["--foreign", str(tmp_path / "conv"), "--flatten", "channels_last"])
    result = json.loads((tmp_path / "results/shipped_identifier.json").read_text())
    rows = {(row["cut"], row["measures"]): row for row in result["rows"]}
    assert result["flatten"] == "channels_last"
    assert rows["whole", "weight,act,actchange"]["variant"] == "weight,act,actchange,reach"
    assert rows["hidden", "weight,act"]["variant"] == "partial:weight,act"


def test_with_the_reach_a_network_is_named_by_the_model_its_recording_can_feed(tiny_store):
    """As the default identifier built with --reach: networks with an update reach under their readout are
    named by the model that reads it, the others (a conv readout over several positions, say) by the one
    without; each model's prediction sets get their own calibration."""
    from lrid.identify.features import build_features

    from benchmarks.transfer import CONFIGS, ForeignSet, _fit_all, _run_probabilities, foreign, load_zoo, prediction_set_coverage

    observables, metadata = load_zoo(str(tiny_store))
    assert observables.groupby("run_id")["reach"].count().gt(0).all()  # lrid records it for every run
    config = CONFIGS[3].with_reach()
    first, second = metadata.index[::2], metadata.index[1::2]
    without_reach = observables[observables["run_id"].isin(second)].assign(reach=np.nan)
    sets = [ForeignSet("reached", metadata.loc[first, ["rule"]].assign(final_test_accuracy=1.0),
                       observables[observables["run_id"].isin(first)], 0.0),
            ForeignSet("unreached", metadata.loc[second, ["rule"]].assign(final_test_accuracy=1.0), without_reach, 0.0)]
    identifier = _fit_all(observables, config, "linear", 1)
    assert set(identifier.models) == {"plain", "reach"}
    assert set(identifier.parts(sets[0].recordings)) == {"reach"} and set(identifier.parts(without_reach)) == {"plain"}
    mixed = pd.concat([sets[0].recordings, without_reach])
    named = identifier.probabilities(mixed)
    assert sorted(named.index) == sorted(metadata.index)
    # Each network's probabilities are those of the model that names it, from the features that model reads.
    by_reach = _run_probabilities(identifier.models["reach"], build_features(sets[0].recordings, **config.reach_features().options()))
    plain = _run_probabilities(identifier.models["plain"], build_features(without_reach, **CONFIGS[3].options()))
    assert np.allclose(named.loc[by_reach.index], by_reach) and np.allclose(named.loc[plain.index], plain)
    # ... the cached features of a whole set give the same.
    assert np.allclose(identifier.probabilities(sets[0].recordings, sets[0].features), by_reach)
    assert not np.allclose(_run_probabilities(identifier.models["plain"], build_features(sets[0].recordings,
                                                                                          **CONFIGS[3].options())), by_reach)
    summaries = foreign(observables, config, "linear", sets, 1, everything=identifier)[1]
    assert [summary["networks"] for summary in summaries] == [12, 12]
    rows = prediction_set_coverage(observables, config, "linear", sets, 1, [], everything=identifier, folds=3)
    as_recorded = {row["set"]: row for row in rows if row["schedule"] == "as recorded" and row["rule"] is None
                   and row["naming"] == "all"}
    assert as_recorded["reached"]["networks"] == as_recorded["unreached"]["networks"] == 12
    # Every network has 6 points: one calibration would give both sets the same threshold.
    assert as_recorded["reached"]["threshold"] != as_recorded["unreached"]["threshold"]
    assert 0.0 <= as_recorded["pooled"]["coverage"] <= 1.0


def test_foreign_accuracy_is_also_measured_over_classifier_seeds(tiny_store):
    """One fit's foreign score carries that fit's luck: identifiers fitted with other seeds name the same sets,
    seed 0 exactly as the foreign table does, and the spread is over the seeds' means."""
    from benchmarks.transfer import CONFIGS, ForeignSet, fit_seeds, foreign, load_zoo

    observables, metadata = load_zoo(str(tiny_store))
    sets = [ForeignSet(name, metadata.loc[runs, ["rule"]].assign(final_test_accuracy=1.0),
                       observables[observables["run_id"].isin(runs)], 0.0)
            for name, runs in (("first", metadata.index[::2]), ("second", metadata.index[1::2]))]
    seeded = fit_seeds(observables, CONFIGS[3], "rf", sets, [0, 1, 2], 1)
    assert [(row["seed"], row["set"]) for row in seeded["results"]] == [
        (seed, name) for seed in (0, 1, 2) for name in ("first", "second")]
    summaries = foreign(observables, CONFIGS[3], "rf", sets, 1)[1]
    assert [row["accuracy_all"] for row in seeded["results"][:2]] == [row["accuracy_all"] for row in summaries]
    means = [row["accuracy_all"] for row in seeded["seed_means"]]
    assert means == [np.mean([row["accuracy_all"] for row in seeded["results"] if row["seed"] == seed]) for seed in (0, 1, 2)]
    spread = seeded["spread"]["accuracy_all"]
    assert spread["mean"] == pytest.approx(np.mean(means)) and spread["sd"] == pytest.approx(np.std(means, ddof=1))
    assert spread["min"] == min(means) and spread["max"] == max(means)


def test_a_store_without_runs_is_refused_in_one_line(tmp_path):
    from benchmarks.transfer import load_zoo

    with pytest.raises(LridError, match="holds no complete runs; generate the zoo into it first"):
        load_zoo(str(tmp_path / "empty"))
