"""Retry, cache and persistence policy shared by the stage tasks.

Only `TransientError` is retried, with exponential backoff and jitter. A stage's result is
persisted to Redis under a key made of the sink, the file's content hash, the stage, the
stage's version and the dataset rules' hash, never the run id: any new run of the same file
resumes after its last completed stage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import SyncClientContext, TaskRunContext
from prefect.filesystems import WritableFileSystem
from prefect.tasks import exponential_backoff
from prefect.transactions import IsolationLevel

from blocks.results import RESULTS_SLUG, LazyLockManager, LeasedRedisLockManager, lock_manager
from sluice.contracts import FileRef
from sluice.errors import TransientError
from sluice.settings import get_settings
from sluice.state.checkpoints import Keys
from tasks.observe import observed

P = ParamSpec("P")
R = TypeVar("R")


def result_key(stage: str, version: int, ref: FileRef) -> str:
    """The stage's cache key, in the Redis keys of the file's sink: a stage result computed for
    one database is never reused for another that shares the Redis."""
    return Keys(ref.sink).result(stage, version, ref.file_id, ref.rules_hash)


def is_transient(_task: Task[..., Any], _run: TaskRun, state: State[Any]) -> bool:
    """Retry only errors that may pass: a terminal error or a bug fails at once."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:  # noqa: BLE001 - anything else is not worth a retry
        return False
    return False


def _cache_key(stage: str, version: int) -> Callable[[TaskRunContext, dict[str, Any]], str]:
    def key(_context: TaskRunContext, parameters: dict[str, Any]) -> str:
        return result_key(stage, version, parameters["ref"])

    return key


# The stages whose results persist, and their versions: bump a stage's version when its output
# changes, so cached results of the old code are not reused (and cleanup deletes the right keys).
CACHED_STAGES: dict[str, int] = {
    "read": 1,
    "infer_schema": 1,
    "profile": 2,  # stages typed.parquet; histograms, top values, time span and gaps
    "validate": 2,  # reads the typed copy; drift, row-level mode
    "enrich": 3,  # describes the lineage columns, writes nothing
    "transform": 3,  # may return enrich's output (with its lineage) as it is
    "prepare": 1,  # read..transform in one run of its bodies, for small files (tasks/prepare.py)
}


_MADE: list[LeasedRedisLockManager] = []
_MAKING = threading.Lock()


def stage_locks() -> LeasedRedisLockManager:
    """The stage locks' manager, made once, on first use, from the settings then in force
    (one manager: it remembers the locks it holds, to release them)."""
    with _MAKING:
        if not _MADE:
            _MADE.append(lock_manager(get_settings()))
        return _MADE[0]


_LOCKS = LazyLockManager(stage_locks)  # nothing is read or built at import


def stage_task(stage: str, composite: bool = False) -> Callable[[Callable[P, R]], Task[P, R]]:
    """`@stage_task("read")`: a task named after its stage with Sluice's retry policy; its
    result persists in Redis when the stage is in CACHED_STAGES. Each run is timed, logged and
    counted (tasks/observe.py); a `composite` task's seconds are those of the stages it runs,
    which count themselves."""
    settings = get_settings()
    options: dict[str, Any] = dict(
        name=stage,
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_backoff_s),
        retry_jitter_factor=0.5,
        retry_condition_fn=is_transient,
    )
    if stage in CACHED_STAGES:
        options |= dict(
            persist_result=True,
            result_storage=RESULTS_SLUG,
            # SERIALIZABLE: a run computing a stage's result holds its cache key's lock in
            # Redis, so a second run of the file waits and then reads that result.
            cache_policy=CacheKeyFnPolicy(
                cache_key_fn=_cache_key(stage, CACHED_STAGES[stage])
            ).configure(isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=_LOCKS),
            cache_expiration=timedelta(seconds=settings.result_ttl_s),
        )
    else:
        options |= dict(persist_result=False)

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        made = task(**options)(observed(stage, fn, composite=composite))
        if stage in CACHED_STAGES:
            _PERSISTING.append(made)
        return made

    return decorate


_PERSISTING: list[Task[Any, Any]] = []
_STORAGE: list[WritableFileSystem] = []  # the saved result-storage block, once a flow gave it


def use_result_storage(block: WritableFileSystem) -> None:
    """Give the persisting stage tasks the saved block itself rather than its slug: Prefect
    loads a slug's block from the API on every task run (measured: 1.0 s of a 3.4 s run)."""
    for stage in _PERSISTING:
        stage.result_storage = block
    _STORAGE[:] = [block]


def one_client() -> AbstractContextManager[SyncClientContext]:
    """One Prefect API client for every flow run inside the block (in this thread).

    Without it each flow run opens its own client, and creating one costs about 0.1 s of CPU
    (an SSL context with the CA bundle, even for an http:// API): measured 0.35 -> 0.27 s of
    client CPU per 1,000-row file.
    """
    return SyncClientContext.get_or_create()


_HELD = threading.local()


def hold_client() -> None:
    """A thread pool's initializer: the thread keeps one Prefect client for all its runs.

    The thread keeps the context manager too: one dropped after `__enter__` is collected at
    once, which exits it, and every run then made a client of its own (measured: 10 % of serve's
    CPU, mostly the SSL context each client builds).
    """
    manager = one_client()
    manager.__enter__()
    _HELD.client = manager


def cached(stage: Task[..., R], ref: FileRef, *args: Any) -> R:
    """`stage.fn(ref, *args)` with the stage task's persisted result, without a task run.

    The same cache key, result storage and SERIALIZABLE lock as the task (Prefect's ResultStore
    used directly): a stored result is read back and the body does not run; otherwise the body
    runs and its result is stored before the lock is released, so a later run of either kind
    resumes after this stage. Not a Prefect transaction: one inside a task run would defer its
    write to the task's end, and a retry of the task would lose it.
    """
    from prefect.results import ResultStore

    if not _STORAGE:
        raise RuntimeError("use_result_storage() was not called: no result storage block")
    store = ResultStore(result_storage=_STORAGE[0], lock_manager=_LOCKS)
    key = result_key(stage.name, CACHED_STAGES[stage.name], ref)
    holder = store.generate_default_holder()
    store.acquire_lock(key, holder=holder)
    try:
        if store.exists(key):
            return store.read(key, holder=holder).result  # type: ignore[no-any-return]
        value = stage.fn(ref, *args)
        store.write(value, key=key, holder=holder)
        return value
    finally:
        store.release_lock(key, holder=holder)
