"""README "Extending lrid": its classifier and its task, each dropped in as one new module of its package,
work end to end (the blocks are read from the README, so the documentation cannot drift from what works)."""

import importlib
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrid.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_module(path: str) -> str:
    """The README's Python block that starts with the comment ``# {path}``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [block for block in blocks if block.startswith(f"# {path}\n")]
    return block


def drop_in(monkeypatch, tmp_path, registry, relative: str):
    """Put the README's module for ``relative`` in a folder that the registry's package searches, as a new file
    of the package would be, and let the table be read afresh (restored after the test)."""
    package = importlib.import_module(registry.package)
    registry.load()  # the built-ins register in the real table, which the test's copy leaves as it was
    folder = tmp_path / registry.package.replace(".", "_")
    folder.mkdir()
    (folder / Path(relative).name).write_text(readme_module(relative))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_loaded", False)
    module = f"{registry.package}.{Path(relative).stem}"
    monkeypatch.delitem(sys.modules, module, raising=False)
    yield
    sys.modules.pop(module, None)


@pytest.fixture
def naive_bayes(monkeypatch, tmp_path):
    from lrid.identify.classifiers import CLASSIFIERS

    yield from drop_in(monkeypatch, tmp_path, CLASSIFIERS, "lrid/identify/classifiers/nb.py")


@pytest.fixture
def iris(monkeypatch, tmp_path):
    from lrid.tasks import TASK_ENTRIES

    yield from drop_in(monkeypatch, tmp_path, TASK_ENTRIES, "lrid/tasks/iris.py")


def test_a_classifier_in_one_new_module_classifies_searches_saves_and_explains(naive_bayes, tiny_store, tmp_path):
    from lrid.identify.classifiers import CLASSIFIERS
    from lrid.identify.scores import load_scores

    assert list(CLASSIFIERS) == ["linear", "rf", "xgb", "conv1d", "nb"]
    runner = CliRunner()
    results = tmp_path / "results"
    classified = runner.invoke(app, ["classify", "--store", str(tiny_store), "--out", str(results),
                                     "--classifiers", "linear,nb", "--splits", "2", "--search", "--no-control"])
    assert classified.exit_code == 0, classified.output
    scores = load_scores(results)
    assert set(scores.classifiers) == {"linear", "nb"}
    assert [set(best) for best in scores.classifiers["nb"].best_params_per_split] == [{"gaussiannb__var_smoothing"}] * 2
    assert 0 <= scores.classifiers["nb"].accuracy_mean <= 1
    # Its saved models load (its trusted type admitted), for identify and for importance alike.
    identified = runner.invoke(app, ["identify", str(results / "models" / "nb"), str(tiny_store)], terminal_width=200)
    assert identified.exit_code == 0, identified.output
    assert "predicted rule per run (24 runs)" in identified.output
    explained = runner.invoke(app, ["report", "importance", str(results), "--classifier", "nb", "--by", "measure",
                                    "--repeats", "1"], terminal_width=200)
    assert explained.exit_code == 0, explained.output
    assert "Importance by measure: nb" in explained.output and "n/a" in explained.output  # no model importance


def test_a_task_in_one_new_module_is_listed_loaded_and_sized_without_its_data(iris):
    from lrid.tasks import TASK_LOSSES, TASKS, get_task, task_geometry

    assert "iris" in TASKS and TASK_LOSSES["iris"] == "cross_entropy"
    task = get_task("iris")
    assert task_geometry("iris") == (task.input_shape, task.n_classes, task.steps_per_epoch(1)) == ((4,), 3, 112)
    listed = CliRunner().invoke(app, ["tasks"], terminal_width=200)
    assert listed.exit_code == 0 and "│ iris" in listed.output
