"""Run a sweep into a store, skipping the runs it already holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from lrid.config import RunSpec, SweepSpec
from lrid.store import Store

if TYPE_CHECKING:
    from lrid.generate.executors import LocalPoolExecutor, RayExecutor, SequentialExecutor


@dataclass
class SweepSummary:
    """Counts of what a call to :func:`generate` did."""

    total: int = 0
    skipped: int = 0
    skipped_failed: int = 0
    complete: int = 0
    collapsed: int = 0
    diverged: int = 0
    failed: int = 0
    elsewhere: int = 0  # runs another process sharing the store was training (or had just finished)
    errors: list[str] = field(default_factory=list)


def plan_runs(sweep: SweepSpec, store: Store, retry_failed: bool = False) -> tuple[list[RunSpec], int, int]:
    """The sweep's runs still to do, how many the store already holds, and how many of those failed."""
    statuses = {m["run_id"]: m["status"] for m in store.manifests()}
    runs = sweep.expand()
    pending = [r for r in runs if r.run_id not in statuses or (retry_failed and statuses[r.run_id] == "failed")]
    failed_kept = 0 if retry_failed else sum(statuses.get(r.run_id) == "failed" for r in runs)
    return pending, len(runs) - len(pending), failed_kept


def pending_runs(sweep: SweepSpec, store: Store, retry_failed: bool = False) -> tuple[list[RunSpec], int]:
    """The sweep's runs that the store does not hold yet, and how many it already holds."""
    pending, skipped, _ = plan_runs(sweep, store, retry_failed)
    return pending, skipped


def generate(
    sweep: SweepSpec,
    store: Store | str,
    retry_failed: bool = False,
    executor: SequentialExecutor | LocalPoolExecutor | RayExecutor | None = None,
    progress: bool | None = None,
) -> SweepSummary:
    """Train and record every run of ``sweep`` that ``store`` does not hold yet.

    Each run is written as soon as it ends, so an interrupted sweep resumes where it stopped. A failed run
    is recorded with its error and the sweep goes on; ``retry_failed`` re-runs failed runs. Runs that another
    process sharing the store is training are left to it (counted as ``elsewhere``): a later call picks up
    whatever that process did not finish.

    Args:
        executor: from :func:`lrid.generate.executors.make_executor`; default: sequential, in this process.
        progress: show a progress bar; None shows it only on a terminal.
    """
    from lrid.generate.executors import SequentialExecutor

    store = store if isinstance(store, Store) else Store(store)
    executor = executor or SequentialExecutor()
    pending, skipped, skipped_failed = plan_runs(sweep, store, retry_failed)
    store.remove_leftovers()  # of writers killed earlier; a live writer's files are younger than a lease
    summary = SweepSummary(total=len(pending) + skipped, skipped=skipped, skipped_failed=skipped_failed)
    bar = tqdm(
        total=len(pending),
        desc=f"generate {sweep.name} ({executor.name})",
        unit="run",
        disable=None if progress is None else not progress,
    )
    for outcome in executor.map(pending, store.location, retry_failed=retry_failed):
        status = outcome["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        if status == "failed":
            summary.errors.append(f"{outcome['run_id']} ({outcome['rule']}): {outcome['error']}")
        bar.update()
        bar.set_postfix(diverged=summary.diverged, failed=summary.failed)
    bar.close()
    store.refresh()  # the runs were written by the executor's own Store objects
    return summary
