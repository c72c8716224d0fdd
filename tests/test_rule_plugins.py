"""A rule of the user's own: registered in-process, or discovered through the `lrid.rules` entry point."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from lrid.config import RuleSpec, RunSpec, TrainSpec
from lrid.generate.trainer import train_run
from lrid.rules import RULES, register_rule
from lrid.rules.base import LearningRule


def test_a_registered_rule_runs_like_a_built_in_one():
    @register_rule
    class FrozenFeedbackAdam(LearningRule):
        """Feedback alignment whose updates Adam applies (an example of composing a rule of one's own)."""

        name = "example_fa_adam"
        description = "example: feedback alignment with Adam"
        reference = "Lillicrap et al. 2016"
        feedback = "fixed"
        optimizer = "adam"

    try:
        spec = RunSpec(rule=RuleSpec(name="example_fa_adam", hparams={"lr": 0.002}), train=TrainSpec(epochs=1))
        result = train_run(spec)
        assert result.manifest["status"] == "complete", result.manifest.get("error")
        assert result.manifest["spec"]["rule"]["hparams"]["lr"] == 0.002
        assert np.isfinite(result.observables["weight_raw_norm"]).all()
    finally:
        RULES.pop("example_fa_adam")


def test_an_entry_point_plugin_is_found_by_the_command_line(tmp_path):
    package = tmp_path / "my_rules.py"
    package.write_text(
        textwrap.dedent(
            '''
            from lrid.rules import register_rule
            from lrid.rules.feedback_alignment import FeedbackAlignment

            @register_rule
            class PluginRule(FeedbackAlignment):
                """A plugin rule."""
                name = "plugin_fa"
                description = "a rule from an installed plugin"
                reference = "test"
            '''
        )
    )
    dist_info = tmp_path / "my_rules-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-rules\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[lrid.rules]\nplugin_fa = my_rules\n")
    code = "import sys; sys.argv = ['lrid', 'rules']; from lrid.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    assert "plugin_fa" in result.stdout and "a rule from an installed plugin" in result.stdout
