"""A batch of databases in one run: the work fanned out over a few threads, each database on its own.

A fleet of tenant databases is backed up in batches (``backup.batch_size`` per run) so that a run's fixed cost
(process start, definitions, resources, the run's own events) is paid once per batch, not once per database.
Inside the run every database keeps its own outcome: one that fails never stops or hides the others, and the
results come back as each database finishes, so its partition turns green (or red) while the rest still run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Done(Generic[Item, Result]):
    item: Item
    result: Result | None = None
    error: BaseException | None = None  # what ``work`` raised for this item (the others carry on)


def fan_out(items: Iterable[Item], work: Callable[[Item], Result], *, workers: int) -> Iterator[Done]:
    """``work(item)`` for every item on ``workers`` threads, yielded as each finishes.

    At most ``workers`` items are in flight (a batch of fifty never opens fifty snapshots at once). With one
    worker the items run in order on the caller's thread, which keeps a one-database run simple to follow.
    An exception is the item's outcome, not the batch's; only ``KeyboardInterrupt``/``SystemExit`` stop it.
    """
    pending = list(items)
    if workers <= 1 or len(pending) <= 1:
        for item in pending:
            yield _run(work, item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ops-batch") as pool:
        for future in as_completed([pool.submit(_run, work, item) for item in pending]):
            yield future.result()


def _run(work: Callable[[Item], Result], item: Item) -> Done:
    try:
        return Done(item, result=work(item))
    except Exception as exc:  # noqa: BLE001 - one database's failure is its own outcome
        return Done(item, error=exc)


def chunks(items: list[Item], size: int) -> list[list[Item]]:
    """``items`` in consecutive runs of at most ``size``, in order (a batch is a contiguous range)."""
    if size < 1:
        raise ValueError("a batch holds at least one database")
    return [items[i:i + size] for i in range(0, len(items), size)]


def label(batch: list[str]) -> str:
    """A batch's name (the ``ops/batch`` run tag): its first and last database."""
    return f"{batch[0]}..{batch[-1]}"


def batch_of(names: list[str], size: int, database: str) -> str | None:
    """The label of the batch that holds ``database`` (None when it is alone in its batch, or unknown)."""
    for batch in chunks(names, size):
        if database in batch:
            return label(batch) if len(batch) > 1 else None
    return None
