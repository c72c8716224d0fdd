"""Where runs execute: in this process, in a pool of local processes, or as Ray tasks on a cluster.

Every executor calls :func:`run_into_store` for each run, and that function writes the run's files
itself, in the worker: the parent only tracks progress, so whichever executor runs a sweep, the store ends
up the same, and a parent that dies loses nothing a worker finished. It claims the run in the store first,
so that sweeps sharing a store (two `lrid generate` processes, two Ray drivers) split the runs between them.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing import get_context

from lrid.config import RunSpec
from lrid.errors import LridError
from lrid.lazy_import import exit_now, prefer_onednn

# The claims this process holds while it trains a run (or a population), so that a worker told to stop
# can release them.
_held_claims: list[tuple] = []


def _outcome(spec: RunSpec, status: str, error: str | None = None) -> dict:
    return {"run_id": spec.run_id, "rule": spec.rule.name, "status": status, "error": error}


def run_into_store(spec_json: str, store_location: str, retry_failed: bool = False) -> dict:
    """Claim one run (given as RunSpec JSON), train it and write it to the store; its id, status and error.

    A run that another live process has claimed, or finished since this sweep was planned, is left to it
    and reported with status ``elsewhere`` (see :meth:`lrid.store.Store.claimed`). With ``retry_failed``
    a run whose manifest says it failed is trained again.
    """
    from lrid.generate.scratch import scratch_tempdir
    from lrid.generate.trainer import train_run
    from lrid.store import Store

    spec = RunSpec.model_validate_json(spec_json)
    store = Store(store_location)
    with store.claimed(spec.run_id) as claim:
        if claim is None:
            return _outcome(spec, "elsewhere")
        done = store.read_manifest(spec.run_id)
        if done is not None and not (retry_failed and done.get("status") == "failed"):
            return _outcome(spec, "elsewhere")
        _held_claims.append((store, spec.run_id, claim))
        try:
            with scratch_tempdir():
                result = train_run(spec)
            store.write_run(result.observables, result.manifest)
        finally:
            _held_claims.clear()
    return _outcome(spec, result.manifest["status"], result.manifest.get("error"))


def run_population_into_store(spec_jsons: list[str], store_location: str, retry_failed: bool = False) -> list[dict]:
    """Claim the runs of one population (RunSpec JSON sharing a population key), train the claimed ones
    together (:func:`lrid.generate.population.train_population`) and write each to the store.

    Runs another process holds or has finished are left to it (status ``elsewhere``), as
    :func:`run_into_store` leaves them; every member is written when the population ends.
    """
    prefer_onednn()  # before this process imports TensorFlow, if it has not (the sequential and Ray backends)
    from contextlib import ExitStack

    from lrid.generate.population import train_population
    from lrid.generate.scratch import scratch_tempdir
    from lrid.store import Store

    specs = [RunSpec.model_validate_json(spec_json) for spec_json in spec_jsons]
    store = Store(store_location)
    outcomes, claimed = {}, []
    with ExitStack() as claims:
        for spec in specs:
            claim = claims.enter_context(store.claimed(spec.run_id))
            done = None if claim is None else store.read_manifest(spec.run_id)
            if claim is None or (done is not None and not (retry_failed and done.get("status") == "failed")):
                outcomes[spec.run_id] = _outcome(spec, "elsewhere")
                continue
            claimed.append(spec)
            _held_claims.append((store, spec.run_id, claim))
        try:
            if claimed:
                with scratch_tempdir():
                    results = train_population(claimed)
                for spec, result in zip(claimed, results, strict=True):
                    store.write_run(result.observables, result.manifest)
                    outcomes[spec.run_id] = _outcome(spec, result.manifest["status"], result.manifest.get("error"))
        finally:
            _held_claims.clear()
    return [outcomes[spec.run_id] for spec in specs]


def run_population_chain_into_store(
    spec_jsons: list[str], store_location: str, retry_failed: bool = False, sizes: tuple[int, ...] = ()
) -> list[dict]:
    """:func:`run_population_into_store` for each population of a chain, in order, in one worker: the
    populations are consecutive runs of ``spec_jsons``, ``sizes`` runs each (see
    :func:`lrid.generate.population.population_chains`)."""
    outcomes, start = [], 0
    for size in sizes:
        outcomes += run_population_into_store(spec_jsons[start : start + size], store_location, retry_failed)
        start += size
    return outcomes


def run_chunk_into_store(spec_jsons: list[str], store_location: str, retry_failed: bool = False) -> list[dict]:
    """:func:`run_into_store` for each run of a chunk, in order, in one worker."""
    return [run_into_store(spec_json, store_location, retry_failed) for spec_json in spec_jsons]


def worker_tasks(units: list[list[RunSpec]], workers: int) -> list[tuple[Callable, list[RunSpec]]]:
    """(function, runs) per task for ``workers`` concurrent workers, from the sweep's :func:`work_units`:
    populations in chains that share traces (one task each), single runs in configuration chunks. Each
    function takes the runs' spec JSON, the store location and ``retry_failed``, as :func:`run_chunk_into_store`
    does."""
    from lrid.generate.population import population_chains

    singles = [unit[0] for unit in units if len(unit) == 1]
    chains = population_chains([unit for unit in units if len(unit) > 1], workers)
    return [
        (
            partial(run_population_chain_into_store, sizes=tuple(map(len, chain))),
            [spec for population in chain for spec in population],
        )
        for chain in chains
    ] + [(run_chunk_into_store, chunk) for chunk in configuration_chunks(singles, workers)]


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


def work_units(specs: list[RunSpec], population: int, workers: int = 1) -> list[list[RunSpec]]:
    """``specs`` as the executors hand them out: populations of up to ``population`` runs that train
    together (:func:`lrid.generate.population.group_populations`, spread over ``workers``), and single runs."""
    if population <= 1:
        return [[spec] for spec in specs]
    from lrid.generate.population import group_populations

    return group_populations(specs, population, spread=workers)


def pool_prefers_onednn(units: list[list[RunSpec]]) -> bool:
    """Whether workers training these work units (:func:`work_units`) should ask TensorFlow for its oneDNN
    kernels before importing it: they made stacked MLP steps several times faster on a CPU where TensorFlow
    leaves them off, and the solo conv net slower, and a process has one setting. So only for populations
    whose solo neighbours are MLPs too (``README``, "Populations")."""
    return any(len(unit) > 1 for unit in units) and all(unit[0].model.arch == "mlp" for unit in units if len(unit) == 1)


def run_unit_into_store(spec_jsons: list[str], store_location: str, retry_failed: bool = False) -> list[dict]:
    """One work unit into the store: a single run alone (:func:`run_into_store`), else a population."""
    if len(spec_jsons) == 1:
        return [run_into_store(spec_jsons[0], store_location, retry_failed)]
    return run_population_into_store(spec_jsons, store_location, retry_failed)


class SequentialExecutor:
    """Runs one after another in this process (compiled steps are reused between runs); with
    ``population`` > 1, runs that can share a step train in populations of up to that many."""

    name = "sequential"

    def __init__(self, population: int = 1) -> None:
        self.population = population

    def map(self, specs: list[RunSpec], store_location: str, retry_failed: bool = False) -> Iterator[dict]:
        """Yield each run's outcome as it finishes."""
        for unit in work_units(specs, self.population):
            yield from run_unit_into_store([spec.model_dump_json() for spec in unit], store_location, retry_failed)


def _init_worker(threads: int, onednn: bool = False) -> None:
    from lrid.generate.scratch import use_scratch_for_this_process

    use_scratch_for_this_process()  # before TensorFlow is imported
    if onednn:  # see pool_prefers_onednn; in the worker only, so that the parent's later pools keep the default
        prefer_onednn()
    # A broken pool stops its other workers with SIGTERM: they give their runs back (see LocalPoolExecutor).
    signal.signal(signal.SIGTERM, _stop_worker)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Workers share the machine's cores; oversubscribed thread pools slow every worker down.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    # Every run compiles its own steps, by design; TensorFlow's retracing notices about that would fill the
    # user's terminal with warnings that ask for nothing. Errors still print.
    tf.get_logger().setLevel("ERROR")
    # Registered after TensorFlow's own exit handlers, so it runs first.
    atexit.register(_end_worker_now)


def _end_worker_now() -> None:
    """End a worker whose pool shut down without the interpreter's teardown of TensorFlow (its other exit
    handlers still run, the scratch directory's removal among them): everything it trained is in the store
    by then, and ``lrid generate`` would wait about 2 s for every worker at the end of each sweep."""
    atexit.unregister(_end_worker_now)  # exit_now runs the remaining handlers, once
    exit_now(0)


def _stop_worker(signum, frame) -> None:
    """Release the run this worker holds and end at once (atexit would not run: clean up here)."""
    from lrid.generate.scratch import remove_scratch

    for store, run_id, claim in _held_claims:
        store.release_claim(run_id, claim)
    remove_scratch()
    os._exit(128 + signum)


class LocalPoolExecutor:
    """Runs in ``workers`` local processes (spawned, so each has its own TensorFlow), each with its share of cores.

    A worker that dies (killed, out of memory) breaks the pool, and the pool stops its other workers. The
    run the dead worker was training is the one whose claim it left behind (a stopped worker releases its
    claim first): that run is reported failed and not retried here, since a run that killed its worker
    (typically by exhausting memory) mostly does so again, and retrying it alone would stall the sweep; it
    gets no manifest, so the next `lrid generate` tries it again. Every other unfinished run goes to a new
    pool of ``workers`` processes.
    """

    name = "process"
    #: pools in a row that may break with no run to blame before the remaining runs are given up
    BLIND_BREAKS = 3

    def __init__(self, workers: int | None = None, population: int = 1) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.population = population

    def _pool(self, workers: int, onednn: bool) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads, onednn),
        )

    def map(self, specs: list[RunSpec], store_location: str, retry_failed: bool = False) -> Iterator[dict]:
        """Yield each run's outcome as its chunk or population finishes (see :func:`configuration_chunks`)."""
        from lrid.store import Store

        store = Store(store_location)
        remaining, blind_breaks = list(specs), 0
        while remaining:
            unfinished = []
            units = work_units(remaining, self.population, self.workers)
            with self._pool(self.workers, pool_prefers_onednn(units)) as pool:
                futures = {
                    pool.submit(
                        function, [spec.model_dump_json() for spec in chunk], store_location, retry_failed
                    ): chunk
                    for function, chunk in worker_tasks(units, self.workers)
                }
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        chunk = futures.pop(future)
                        try:
                            yield from future.result()
                        except BrokenProcessPool:
                            unfinished += chunk
            # The broken pool has ended all its workers by now (leaving the with block waits for them).
            remaining, culprits = [], []
            for spec in unfinished:
                manifest = store.read_manifest(spec.run_id)
                if manifest is not None and not (retry_failed and manifest.get("status") == "failed"):
                    yield _outcome(spec, manifest["status"], manifest.get("error"))  # finished before the break
                elif self._died_training(store, spec.run_id):
                    culprits.append(spec)
                else:
                    remaining.append(spec)
            for spec in culprits:
                store.release_claim(spec.run_id)
                yield _outcome(
                    spec,
                    "failed",
                    "the worker process died while training this run (killed, or "
                    "out of memory); `lrid generate` tries it again",
                )
            blind_breaks = 0 if culprits else blind_breaks + 1
            if remaining and blind_breaks >= self.BLIND_BREAKS:
                for spec in remaining:
                    yield _outcome(
                        spec,
                        "failed",
                        f"worker processes died {blind_breaks} times in a row, "
                        "none while training a run; check memory and the system log",
                    )
                return

    @staticmethod
    def _died_training(store, run_id: str) -> bool:
        """Whether ``run_id``'s claim was left by a worker of this process that no longer exists."""
        from lrid.store import process_alive

        claim = store.read_claim(run_id) or {}
        return (
            claim.get("host") == socket.gethostname()
            and claim.get("parent") == os.getpid()
            and not process_alive(claim.get("pid", -1))
        )


class RayExecutor:
    """Runs a sweep as Ray tasks; the store must be reachable from every node (a shared path or a URI).

    Tasks are planned as the process pool plans them (:func:`worker_tasks`) for as many workers as the cluster
    holds tasks of this size at once: populations that share a step in chains, one task each, and single
    runs in configuration chunks, so a worker traces a step once for many runs. Ray starts a fresh worker
    process for each GPU task by default (which frees TensorFlow's GPU memory), so without chains every
    population on a GPU would pay TensorFlow's import and a trace of its own.

    Args:
        address: a cluster address (``ray://host:10001`` or ``auto``); None starts a local Ray instance.
        num_cpus, num_gpus: resources each task (a run, or a population) requests.
        population: the most runs one task trains together (see :func:`work_units`).
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0, population: int = 1
    ) -> None:
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.population = population

    def map(self, specs: list[RunSpec], store_location: str, retry_failed: bool = False) -> Iterator[dict]:
        """Yield each run's outcome as it finishes."""
        try:
            import ray
        except ImportError:
            raise LridError("the ray backend needs Ray: pip install 'lrid[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            from lrid.store import Store

            task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(_run_in_ray_worker)
            slots = self._slots(ray.cluster_resources())
            refs = {
                task.remote(function, [spec.model_dump_json() for spec in unit], store_location, retry_failed): unit
                for function, unit in worker_tasks(work_units(specs, self.population, slots), slots)
            }
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                unit = refs.pop(done[0])
                try:
                    yield from ray.get(done[0])
                except ray.exceptions.RayError as error:
                    # A chain or chunk may have written some of its runs before it failed: those stand.
                    store = Store(store_location)
                    for spec in unit:
                        manifest = store.read_manifest(spec.run_id)
                        if manifest is not None and manifest.get("status") != "failed":
                            yield _outcome(spec, manifest["status"], manifest.get("error"))
                        else:
                            failure = f"Ray task failed: {type(error).__name__}: {str(error).splitlines()[0]}"
                            yield _outcome(spec, "failed", failure)
        finally:
            if started_here:
                ray.shutdown()

    def _slots(self, resources: dict) -> int:
        """How many of this executor's tasks the cluster's ``resources`` run at once (at least one)."""
        if self.num_gpus > 0:
            return max(1, int(resources.get("GPU", 0) // self.num_gpus))
        return max(1, int(resources.get("CPU", 1) // self.num_cpus) if self.num_cpus > 0 else 1)


def _run_in_ray_worker(
    function: Callable, spec_jsons: list[str], store_location: str, retry_failed: bool
) -> list[dict]:
    """A task of :func:`worker_tasks` in a Ray worker, which Ray may end without atexit: scratch files go to its
    own directory, which the next lrid process of the host removes if so."""
    from lrid.generate.scratch import use_scratch_for_this_process

    use_scratch_for_this_process()
    return function(spec_jsons, store_location, retry_failed)


def make_executor(
    backend: str = "sequential",
    workers: int | None = None,
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    population: int = 1,
) -> SequentialExecutor | LocalPoolExecutor | RayExecutor:
    """An executor by name: ``sequential``, ``process`` (a local pool of ``workers``) or ``ray``; each trains
    runs that can share a step in populations of up to ``population`` (1: every run alone). Processes that
    train populations ask TensorFlow for its oneDNN CPU kernels (:func:`lrid.lazy_import.prefer_onednn`)."""
    if population < 1:
        raise LridError(f"--population must be at least 1, got {population}; 1 trains every run alone")
    if backend == "sequential":
        return SequentialExecutor(population)
    if backend == "process":
        return LocalPoolExecutor(workers, population)
    if backend == "ray":
        return RayExecutor(address, num_cpus, num_gpus, population)
    raise LridError(f"unknown backend {backend!r}; choose sequential, process or ray")
