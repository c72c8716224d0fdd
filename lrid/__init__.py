"""lrid: identify the learning rule that trained a network from its observables.

The pipeline has three stages, each a sub-package and a CLI command:

* :mod:`lrid.generate` trains networks under many learning rules and records their observables;
* :mod:`lrid.identify` turns trajectories into features and scores classifiers on them;
* :mod:`lrid.report` writes the Markdown report and figures.

Importing :mod:`lrid` does not import TensorFlow; the stages that need it import it themselves.
"""

__version__ = "0.1.0"
