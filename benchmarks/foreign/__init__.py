"""An independent numpy implementation of learning rules that writes lrid-format raw recordings.

It imports nothing from lrid: it exists so that lrid's identifier can be scored on networks it did not train.
``generate_networks(out_dir, n, seed, rules) -> [(path, rule)]`` is the entry point (see :mod:`.generate`).
"""

__all__ = ["generate_networks"]


def __getattr__(name):
    # Imported on first use, so that `python -m benchmarks.foreign.generate` does not import itself twice.
    if name == "generate_networks":
        from benchmarks.foreign.generate import generate_networks

        return generate_networks
    raise AttributeError(name)
