"""lrid: identify the learning rule that trained a network from its observables.

The pipeline has three stages, each a sub-package and a CLI command:

* :mod:`lrid.generate` trains networks under many learning rules and records their observables;
* :mod:`lrid.identify` turns trajectories into features and scores classifiers on them;
* :mod:`lrid.report` writes the Markdown report and figures.

Importing :mod:`lrid` does not import TensorFlow; the stages that need it import it themselves.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

# Both are read when their runtime loads, so they are set here, before any stage imports XGBoost or
# TensorFlow; a value the user set is kept.
#
# OpenMP threads (XGBoost, parts of scikit-learn) spin while they wait by default; when the cores are
# shared (a busy machine, pool workers, parallel searches) spinning threads starve the ones doing work,
# and a small XGBoost fit becomes many times slower than with passive waits.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# TensorFlow reserves nearly all of a GPU's memory in the first process that touches it, so a second pool
# worker or Ray task sharing that GPU (`--num-gpus 0.5`) would fail to allocate; growing on demand lets
# several processes share one device.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

# TensorFlow logs as it loads before it reads TF_CPP_MIN_LOG_LEVEL; lrid makes that import honour it.
from lrid.lazy_import import filter_tensorflow_load_logs  # noqa: E402 - after the environment it reads

filter_tensorflow_load_logs()
