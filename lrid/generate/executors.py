"""Where runs execute: in this process, in a pool of local processes, or as Ray tasks on a cluster.

Every executor calls :func:`run_into_store` for each run, and that function writes the run's files
itself, in the worker: the parent only tracks progress, so whichever executor runs a sweep, the store ends
up the same, and a parent that dies loses nothing a worker finished.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from lrid.config import RunSpec
from lrid.errors import LridError


def run_into_store(spec_json: str, store_location: str) -> dict:
    """Train one run (given as RunSpec JSON) and write it to the store; return its id, status and error."""
    from lrid.generate.trainer import train_run
    from lrid.store import Store

    spec = RunSpec.model_validate_json(spec_json)
    result = train_run(spec)
    Store(store_location).write_run(result.observables, result.manifest)
    return {"run_id": spec.run_id, "rule": spec.rule.name, "status": result.manifest["status"], "error": result.manifest.get("error")}


def run_chunk_into_store(spec_jsons: list[str], store_location: str) -> list[dict]:
    """:func:`run_into_store` for each run of a chunk, in order, in one worker."""
    return [run_into_store(spec_json, store_location) for spec_json in spec_jsons]


def configuration_chunks(specs: list[RunSpec], workers: int) -> list[list[RunSpec]]:
    """Runs grouped so that each group shares a compiled configuration, split into chunks small enough to
    keep ``workers`` busy (at least four chunks per worker when there are enough runs).

    Tracing a configuration's step and recorder costs seconds, as much as training a demo network, and a
    worker reuses them only for runs it executes itself: sending a configuration's runs to one worker,
    rather than spreading them, traces each configuration about once per sweep instead of once per worker.
    """
    from lrid.generate.trainer import configuration_key

    groups: dict[str, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(configuration_key(spec), []).append(spec)
    largest = max(1, -(-len(specs) // (4 * workers)))
    return [group[start : start + largest] for group in groups.values() for start in range(0, len(group), largest)]


class SequentialExecutor:
    """Runs one after another in this process (compiled steps are reused between runs)."""

    name = "sequential"

    def map(self, specs: list[RunSpec], store_location: str) -> Iterator[dict]:
        """Yield each run's outcome as it finishes."""
        for spec in specs:
            yield run_into_store(spec.model_dump_json(), store_location)


def _init_worker(threads: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Workers share the machine's cores; oversubscribed thread pools slow every worker down.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


class LocalPoolExecutor:
    """Runs in ``workers`` local processes (spawned, so each has its own TensorFlow), each with its share of cores.

    A worker that dies (killed, out of memory) fails only the runs it held: they are recorded as failed in
    the outcome stream, and the pool is restarted for the rest.
    """

    name = "process"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(self.threads,)
        )

    def map(self, specs: list[RunSpec], store_location: str) -> Iterator[dict]:
        """Yield each run's outcome as its chunk finishes (see :func:`configuration_chunks`)."""
        from lrid.store import Store

        orphaned = []
        with self._pool(self.workers) as pool:
            futures = {
                pool.submit(run_chunk_into_store, [spec.model_dump_json() for spec in chunk], store_location): chunk
                for chunk in configuration_chunks(specs, self.workers)
            }
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk = futures.pop(future)
                    try:
                        yield from future.result()
                    except BrokenProcessPool:
                        orphaned += chunk
        # A dead worker breaks the whole pool and which run killed it is unknown: retry each unfinished run
        # alone (a chunk's runs that finished before the worker died are in the store already).
        finished = {m["run_id"]: m for m in Store(store_location).manifests()} if orphaned else {}
        for spec in orphaned:
            if spec.run_id in finished:
                manifest = finished[spec.run_id]
                yield {"run_id": spec.run_id, "rule": spec.rule.name, "status": manifest["status"], "error": manifest.get("error")}
                continue
            with self._pool(1) as pool:
                try:
                    yield pool.submit(run_into_store, spec.model_dump_json(), store_location).result()
                except BrokenProcessPool:
                    yield {"run_id": spec.run_id, "rule": spec.rule.name, "status": "failed",
                           "error": "the worker process died (killed, or out of memory)"}


class RayExecutor:
    """Runs each run as a Ray task; the store must be reachable from every node (a shared path or a URI).

    Args:
        address: a cluster address (``ray://host:10001`` or ``auto``); None starts a local Ray instance.
        num_cpus, num_gpus: resources each run requests.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus

    def map(self, specs: list[RunSpec], store_location: str) -> Iterator[dict]:
        """Yield each run's outcome as it finishes."""
        try:
            import ray
        except ImportError:
            raise LridError("the ray backend needs Ray: pip install 'lrid[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(run_into_store)
            refs = {task.remote(spec.model_dump_json(), store_location): spec for spec in specs}
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                spec = refs.pop(done[0])
                try:
                    yield ray.get(done[0])
                except ray.exceptions.RayError as error:
                    yield {"run_id": spec.run_id, "rule": spec.rule.name, "status": "failed",
                           "error": f"Ray task failed: {type(error).__name__}: {str(error).splitlines()[0]}"}
        finally:
            if started_here:
                ray.shutdown()


def make_executor(backend: str = "sequential", workers: int | None = None, address: str | None = None,
                  num_cpus: float = 1, num_gpus: float = 0):
    """An executor by name: ``sequential``, ``process`` (a local pool of ``workers``) or ``ray``."""
    if backend == "sequential":
        return SequentialExecutor()
    if backend == "process":
        return LocalPoolExecutor(workers)
    if backend == "ray":
        return RayExecutor(address, num_cpus, num_gpus)
    raise LridError(f"unknown backend {backend!r}; choose sequential, process or ray")
