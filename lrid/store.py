"""The trajectory store: Parquet observables plus a JSON manifest per run, on any pyarrow filesystem.

Layout under the store root (a local path, ``file://`` URI, or any URI pyarrow's filesystems open, such as
``s3://bucket/prefix`` or ``gs://bucket/prefix``, so cluster workers can share one store)::

    observables/task=T/arch=A/rule=R/<run_id>.parquet   one row per (step, layer)
    views/<view>/task=T/arch=A/rule=R/<run_id>.parquet  the same rows for a degraded view (optional)
    runs/<run_id>.json                                   the run's manifest, written last

A row holds the run, step and layer (:data:`lrid.schema.ID_COLUMNS`), then the layer's observables
(:data:`lrid.schema.STORED_OBSERVABLES`). Files written before the cross-layer observables (update reach)
existed lack their columns, and read as NaN there.

Degraded views (``observe.views`` in a sweep, see :mod:`lrid.observables.degrade`) are named like
``u0.5_n0.1`` and live outside ``observables/``, so stores and readers from before views are unchanged;
the manifest lists them under ``"views"`` (name to path). ``Store(location, view="u0.5_n0.1")`` reads that
view in place of the full observables, from the runs that recorded it; ``view="full"`` (or None) reads the
full observables.

Each file is written whole before it becomes visible (on local disks: to a temporary name, flushed and
renamed; on object stores a PUT is atomic by itself), and the manifest only after the observables: a run
without a manifest does not exist, so a killed sweep leaves nothing a reader would take for data, and
resuming re-runs exactly the runs that have no manifest. Temporary files start with "." and are ignored.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lrid.errors import LridError
from lrid.schema import CROSS_LAYER_OBSERVABLES, FULL_VIEW, ID_COLUMNS, STORED_OBSERVABLES, json_safe, parse_manifest

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int64()),
        ("epoch", pa.float64()),
        ("layer", pa.string()),
        ("layer_index", pa.int32()),
        ("depth_group", pa.string()),
        *[(name, pa.float64()) for name in STORED_OBSERVABLES],
    ]
)

#: The hive partitions of the observables' paths (``task=T/arch=A/rule=R``), read as columns.
PARTITIONS = pa.schema([("task", pa.string()), ("arch", pa.string()), ("rule", pa.string())])


def resolve_filesystem(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root path for a local path or a URI."""
    text = str(location)
    if "://" in text:
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
            raise LridError(f"cannot open store {text}: {error}; use a local path or a URI pyarrow supports") from None
    return pafs.LocalFileSystem(), os.path.abspath(text)


class Store:
    """A directory of run trajectories and manifests (see the module docstring for the layout)."""

    def __init__(
        self, location: str | Path, filesystem: pafs.FileSystem | None = None, view: str | None = None
    ) -> None:
        """Open the store at ``location``: a local path or URI, or a path inside ``filesystem`` if given.

        ``view`` names a degraded view that :meth:`read_observables` reads instead of the full observables.
        """
        self.location = str(location)
        self.view = None if view in (None, FULL_VIEW) else view
        if filesystem is None:
            self.filesystem, self.root = resolve_filesystem(location)
        else:
            self.filesystem, self.root = filesystem, str(location)
        self._local = isinstance(self.filesystem, pafs.LocalFileSystem)
        if self._local:
            _check_local_root(self.root)
        self._manifests: list[dict] | None = None  # read once; forgotten when this instance writes a manifest

    def __repr__(self) -> str:
        return f"Store({self.location!r})" if self.view is None else f"Store({self.location!r}, view={self.view!r})"

    # -- paths -------------------------------------------------------------------------------------------
    @staticmethod
    def observables_relpath(spec: dict, run_id: str) -> str:
        """Where a run's observables live, relative to the root, partitioned hive-style."""
        return (
            f"observables/task={spec['task']['name']}/arch={spec['model']['arch']}/"
            f"rule={spec['rule']['name']}/{run_id}.parquet"
        )

    @staticmethod
    def view_relpath(spec: dict, run_id: str, view: str) -> str:
        """Where a run's degraded ``view`` lives, relative to the root."""
        return f"views/{view}/" + Store.observables_relpath(spec, run_id).removeprefix("observables/")

    def path(self, relative: str) -> str:
        """The full path of ``relative`` inside the store's filesystem."""
        return posixpath.join(self.root, relative)

    def manifest_path(self, run_id: str) -> str:
        """The full path of a run's manifest."""
        return self.path(f"runs/{run_id}.json")

    # -- writing -----------------------------------------------------------------------------------------
    def _write_bytes(self, path: str, data: bytes) -> None:
        if not self._local:
            parent = posixpath.dirname(path)
            self.filesystem.create_dir(parent, recursive=True)
            with self.filesystem.open_output_stream(path) as stream:
                stream.write(data)
            return
        directory = Path(path).parent
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".tmp-{uuid.uuid4().hex}-{Path(path).name}"
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def _write_table(self, relative: str, rows: pd.DataFrame) -> None:
        # Rows without the cross-layer observables (written by callers from before them) store them as NaN.
        missing = {name: np.nan for name in CROSS_LAYER_OBSERVABLES if name not in rows}
        table = pa.Table.from_pandas(
            rows.assign(**missing)[ID_COLUMNS + list(STORED_OBSERVABLES)], schema=SCHEMA, preserve_index=False
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self._write_bytes(self.path(relative), sink.getvalue().to_pybytes())

    def write_run(self, observables: pd.DataFrame | None, manifest: dict) -> None:
        """Write a run's observables (if any), then its manifest; the manifest makes the run exist.

        A ``view`` column, if present, splits the rows: ``"full"`` rows are the observables, the others
        are written as degraded views and listed in the manifest.
        """
        if observables is not None and len(observables):
            spec, run_id = manifest["spec"], manifest["run_id"]
            by_view = (
                dict(tuple(observables.groupby("view", sort=False)))
                if "view" in observables
                else {FULL_VIEW: observables}
            )
            views = {}
            for view, rows in by_view.items():
                if view == FULL_VIEW:
                    continue
                views[view] = self.view_relpath(spec, run_id, view)
                self._write_table(views[view], rows)
            relative = self.observables_relpath(spec, run_id)
            self._write_table(relative, by_view[FULL_VIEW])
            manifest = {**manifest, "observables": relative, **({"views": views} if views else {})}
        # Strict JSON: non-finite numbers (a diverged run's loss) become null, which every parser reads.
        text = json.dumps(json_safe(manifest), indent=2, sort_keys=True, allow_nan=False)
        self.refresh()
        self._write_bytes(self.manifest_path(manifest["run_id"]), text.encode())

    # -- reading -----------------------------------------------------------------------------------------
    def _list(self, relative_dir: str, suffix: str) -> list[str]:
        selector = pafs.FileSelector(self.path(relative_dir), allow_not_found=True, recursive=True)
        return sorted(
            info.path
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
            and info.path.endswith(suffix)
            and not posixpath.basename(info.path).startswith(".")  # temporary files of killed writers
        )

    def manifests(self) -> list[dict]:
        """Every run's manifest, sorted by run id, checked against :class:`lrid.schema.Manifest`.

        Read once per ``Store`` and kept (treat the dicts as read-only): runs this instance writes are seen
        at the next call, runs written by other processes (or other ``Store`` objects) after :meth:`refresh`
        or by a new ``Store``. An unreadable or malformed manifest (not JSON, the wrong shape, a path outside
        the store, a run id that does not match its file name) is an error naming the file.
        """
        if self._manifests is None:
            self._manifests = [self._read_manifest_file(path) for path in self._list("runs", ".json")]
        return list(self._manifests)

    def refresh(self) -> None:
        """Forget the manifests read so far, so the next read sees what others wrote meanwhile."""
        self._manifests = None

    def _read_manifest_file(self, path: str) -> dict:
        try:
            with self.filesystem.open_input_stream(path) as stream:
                manifest = parse_manifest(json.loads(stream.read()))
            if f"{manifest['run_id']}.json" != posixpath.basename(path):
                raise ValueError(f"run_id {manifest['run_id']!r} does not match the file name")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LridError(
                f"manifest {path} is corrupt; delete it and re-run `lrid generate` to redo that run"
            ) from None
        except ValueError as error:
            raise LridError(
                f"manifest {path} is malformed ({error}); delete it and re-run `lrid generate` to redo that run"
            ) from None
        return manifest

    def orphan_observables(self) -> list[str]:
        """Observables files with no manifest: runs interrupted between their two writes (redone on resume)."""
        referenced = {self.path(m["observables"]) for m in self.manifests() if m.get("observables")}
        return [path for path in self._list("observables", ".parquet") if path not in referenced]

    def done_run_ids(self, include_failed: bool = True) -> set[str]:
        """Run ids that have a manifest (optionally leaving out failed runs, so they are retried)."""
        return {m["run_id"] for m in self.manifests() if include_failed or m["status"] != "failed"}

    def runs_table(self) -> pd.DataFrame:
        """One row per run: id, status, rule, task, arch, the training and rule settings, final metrics."""
        rows = []
        for manifest in self.manifests():
            spec = manifest["spec"]
            rows.append(
                {
                    "run_id": manifest["run_id"],
                    "status": manifest["status"],
                    "rule": spec["rule"]["name"],
                    "task": spec["task"]["name"],
                    "arch": spec["model"]["arch"],
                    **{f"train.{k}": v for k, v in spec["train"].items()},
                    **{f"rule.{k}": v for k, v in spec["rule"]["hparams"].items()},
                    "final_test_accuracy": manifest.get("final_test_accuracy"),
                    "final_train_loss": manifest.get("final_train_loss"),
                    "wall_time_s": manifest.get("wall_time_s"),
                    "error": manifest.get("error"),
                }
            )
        columns = ["run_id", "status", "rule", "task", "arch"]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)

    def view_names(self) -> list[str]:
        """``"full"``, then every degraded view that some run of the store recorded, sorted by name."""
        return [FULL_VIEW, *sorted({view for manifest in self.manifests() for view in manifest.get("views", {})})]

    def read_observables(
        self,
        statuses: tuple[str, ...] = ("complete",),
        rules: Collection[str] | None = None,
        archs: Collection[str] | None = None,
        tasks: Collection[str] | None = None,
    ) -> pd.DataFrame:
        """The observables of every run whose status is in ``statuses``, with rule/task/arch columns.

        ``rules``, ``archs`` and ``tasks`` (None: all) keep only those runs; they select hive partitions, so
        the files of other runs are not opened. For a store opened with a ``view``, that view's rows, from
        the runs that recorded it. The files are the ones the manifests name, read as one
        ``pyarrow.dataset``: files without a manifest (a run killed between its writes) are never read.
        """
        manifests = self.manifests()
        if self.view is not None and manifests and not any(self.view in m.get("views", {}) for m in manifests):
            raise LridError(
                f"no run in {self.location} recorded view {self.view!r}; views present: {', '.join(self.view_names())}"
            )
        owners = {}
        for manifest in manifests:
            if manifest["status"] not in statuses or not manifest.get("observables"):
                continue
            relative = manifest["observables"] if self.view is None else manifest.get("views", {}).get(self.view)
            if relative is not None:
                owners[self.path(relative)] = manifest["run_id"]
        columns = [*ID_COLUMNS, *STORED_OBSERVABLES, "rule", "task", "arch"]
        if not owners:
            return pd.DataFrame(columns=columns)
        dataset = ds.dataset(
            list(owners),
            schema=pa.unify_schemas([SCHEMA, PARTITIONS]),
            format="parquet",
            filesystem=self.filesystem,
            partitioning=ds.partitioning(PARTITIONS, flavor="hive"),
            partition_base_dir=self.path("observables" if self.view is None else f"views/{self.view}"),
        )
        wanted = [
            ds.field(name).isin(list(values))
            for name, values in (("rule", rules), ("arch", archs), ("task", tasks))
            if values is not None
        ]
        try:
            table = dataset.to_table(filter=functools.reduce(operator.and_, wanted) if wanted else None)
        except (OSError, pa.ArrowException):
            raise self._unreadable(dataset, owners) from None
        return table.to_pandas()[columns]

    def _unreadable(self, dataset: ds.FileSystemDataset, owners: dict[str, str]) -> LridError:
        """The error naming the first observables file of ``dataset`` that cannot be read."""
        for fragment in dataset.get_fragments():
            try:
                fragment.to_table(schema=dataset.schema)
            except (OSError, pa.ArrowException) as error:
                return LridError(
                    f"observables file {fragment.path} is unreadable ({type(error).__name__}); delete it and "
                    f"{self.manifest_path(owners[fragment.path])}, then re-run `lrid generate` to regenerate the run"
                )
        return LridError(
            f"the observables of {self.location} are unreadable; re-run `lrid generate` to regenerate them"
        )

    # -- claims: one trainer per run across processes ------------------------------------------------------
    # A run is claimed right before it is trained, so that sweeps sharing a store (two `lrid generate`
    # processes, two Ray drivers) split the work instead of each training every run. A claim is a file
    # claims/<run_id>.json naming its owner (host, pid, a unique token) and a lease expiry; the owner renews
    # the lease while it trains and removes the claim once the manifest is written. A claim whose lease
    # has expired, or whose owner was a process of this host that no longer exists, is stale and may be
    # taken over, so a crashed claimant never blocks a run for longer than a lease.
    #
    # On local disks a claim is created with O_CREAT|O_EXCL, which at most one process wins. pyarrow offers
    # no exclusive create on object stores: there a claimant writes its claim and reads it back, keeping
    # the run only if its own token is there; two claimants racing within one round trip can both win.
    # That costs duplicated work at worst, never data: both write the same deterministic run whole.

    CLAIM_LEASE_S = 300.0  # renewed every third of it while training

    def claim_path(self, run_id: str) -> str:
        """The full path of a run's claim."""
        return self.path(f"claims/{run_id}.json")

    def read_claim(self, run_id: str) -> dict | None:
        """A run's claim (owner and lease expiry), None if unclaimed; an unreadable claim reads as ``{}``."""
        try:
            with self.filesystem.open_input_stream(self.claim_path(run_id)) as stream:
                claim = json.loads(stream.read())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {}  # being written right now, or torn: stale only once the file is a lease old
        return claim if isinstance(claim, dict) else {}

    def claim_is_stale(self, run_id: str, claim: dict | None) -> bool:
        """Whether ``claim`` (as :meth:`read_claim` returned it) may be taken over."""
        if claim is None:
            return True
        if not claim:
            info = self.filesystem.get_file_info(self.claim_path(run_id))
            return info.mtime is None or info.mtime.timestamp() < time.time() - self.CLAIM_LEASE_S
        if claim.get("expires", 0) < time.time():
            return True
        return claim.get("host") == socket.gethostname() and not process_alive(claim.get("pid", -1))

    def _claim_owner(self, lease_s: float) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "parent": os.getppid(),
            "token": uuid.uuid4().hex,
            "expires": time.time() + lease_s,
        }

    def try_claim(self, run_id: str, lease_s: float | None = None) -> dict | None:
        """Claim ``run_id`` for this process; the claim, or None if another live process holds it."""
        lease_s = self.CLAIM_LEASE_S if lease_s is None else lease_s
        owner = self._claim_owner(lease_s)
        path = self.claim_path(run_id)
        if not self._local:
            if not self.claim_is_stale(run_id, self.read_claim(run_id)):
                return None
            self._write_bytes(path, json.dumps(owner).encode())
            return owner if (self.read_claim(run_id) or {}).get("token") == owner["token"] else None
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a takeover that loses a race starts over
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = self.read_claim(run_id)
                if not self.claim_is_stale(run_id, held) or not self._take_over_local(path, held):
                    return None
                continue
            with os.fdopen(descriptor, "w") as handle:
                json.dump(owner, handle)
            return owner
        return None

    @staticmethod
    def _take_over_local(path: str, stale: dict | None) -> bool:
        """Move a stale claim aside; False if another claimant changed it meanwhile (it is then put back)."""
        aside = str(Path(path).with_name(f".stale-{uuid.uuid4().hex}-{Path(path).name}"))
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # someone else removed it: try to create it again
        try:
            moved = json.loads(Path(aside).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            moved = {}
        if stale and moved.get("token") != stale.get("token"):
            # A fresh claim replaced the stale one between reading and renaming: restore it unless a third
            # claimant already claimed the run again (then that one holds it).
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            os.unlink(aside)
            return False
        os.unlink(aside)
        return True

    def renew_claim(self, run_id: str, claim: dict, lease_s: float | None = None) -> bool:
        """Extend this process's ``claim`` by a lease; False if it was lost (taken over as stale)."""
        if (self.read_claim(run_id) or {}).get("token") != claim["token"]:
            return False
        claim["expires"] = time.time() + (self.CLAIM_LEASE_S if lease_s is None else lease_s)
        self._write_bytes(self.claim_path(run_id), json.dumps(claim).encode())
        return True

    def release_claim(self, run_id: str, claim: dict | None = None) -> None:
        """Remove a run's claim: this process's ``claim`` only if it still holds it, any claim if None."""
        if claim is not None and (self.read_claim(run_id) or {}).get("token") != claim["token"]:
            return
        try:
            self.filesystem.delete_file(self.claim_path(run_id))
        except FileNotFoundError:
            pass

    @contextmanager
    def claimed(self, run_id: str, lease_s: float | None = None) -> Iterator[dict | None]:
        """Hold ``run_id``'s claim (renewed in the background) for the ``with`` block, or yield None if
        another live process holds it; the claim is released when the block ends."""
        claim = self.try_claim(run_id, lease_s)
        if claim is None:
            yield None
            return
        lease_s = self.CLAIM_LEASE_S if lease_s is None else lease_s
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(lease_s / 3) and self.renew_claim(run_id, dict(claim), lease_s):
                pass

        renewer = threading.Thread(target=renew, name=f"lrid-claim-{run_id}", daemon=True)
        renewer.start()
        try:
            yield claim
        finally:
            stop.set()
            renewer.join()
            self.release_claim(run_id, claim)

    def read_manifest(self, run_id: str) -> dict | None:
        """One run's manifest, None if it has none (or an unreadable one, which a new run replaces)."""
        try:
            with self.filesystem.open_input_stream(self.manifest_path(run_id)) as stream:
                return parse_manifest(json.loads(stream.read()))
        except (OSError, ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
            return None

    def remove_leftovers(self, older_than_s: float | None = None) -> list[str]:
        """Delete what killed writers left behind, and return the paths: temporary files older than
        ``older_than_s`` (default: a lease, so a live writer's temporary file is kept) and stale claims."""
        cutoff = time.time() - (self.CLAIM_LEASE_S if older_than_s is None else older_than_s)
        selector = pafs.FileSelector(self.root, allow_not_found=True, recursive=True)
        removed = []
        for info in self.filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            name = posixpath.basename(info.path)
            if name.startswith((".tmp-", ".stale-")):
                leftover = info.mtime is not None and info.mtime.timestamp() < cutoff
            else:
                run_id = name.removesuffix(".json")
                leftover = (
                    posixpath.dirname(info.path) == self.path("claims")
                    and name.endswith(".json")
                    and self.claim_is_stale(run_id, self.read_claim(run_id))
                )
            if leftover:
                try:
                    self.filesystem.delete_file(info.path)
                except FileNotFoundError:
                    continue
                removed.append(info.path)
        return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host and is not a zombie (one of another user counts as alive).

    A killed process stays in the process table as a zombie until its parent, or whoever adopted it, reaps
    it; a container's first process may never do so. A zombie runs nothing, so it counts as dead.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # The state follows the command name, which is in parentheses and may itself hold spaces.
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): existence is all that can be told
    return state != b"Z"


def _check_local_root(root: str) -> None:
    """Refuse a local store root that is a file, or lies under one, before anything tries to write there."""
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise LridError(f"store {root} is a file, not a directory; pass a directory (it is created if missing)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise LridError(f"store {root} lies under {parent}, which is a file; pass a path under a directory")
            break
