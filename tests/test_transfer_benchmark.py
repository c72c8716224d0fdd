"""The transfer benchmark's nuisance factors: every run gets a level, specs that omit a field read as its default."""

import numpy as np
import pandas as pd

from benchmarks.transfer import FACTORS


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
