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

# OpenMP threads (XGBoost, parts of scikit-learn) spin while they wait by default; when the cores are
# shared (a busy machine, pool workers, parallel searches) spinning threads starve the ones doing work,
# and a small XGBoost fit becomes many times slower than with passive waits. The runtime reads it when it loads, so it is set here, before any stage imports XGBoost. A value the
# user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
