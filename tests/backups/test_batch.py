"""Fanning a batch of databases out inside one run: every item has its own outcome."""

import threading
import time

import pytest

from ops_project.backups.batch import chunks, fan_out


def test_every_item_has_its_own_outcome_and_one_failure_stops_nothing():
    def work(n: int) -> int:
        if n == 3:
            raise ValueError("tenant 3 is broken")
        return n * n

    done = list(fan_out(range(8), work, workers=3))
    assert sorted(d.item for d in done) == list(range(8))
    by_item = {d.item: d for d in done}
    assert str(by_item[3].error) == "tenant 3 is broken" and by_item[3].result is None
    assert {i: d.result for i, d in by_item.items() if i != 3} == {i: i * i for i in range(8) if i != 3}


def test_no_more_than_workers_items_are_in_flight():
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def work(n: int) -> int:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return n

    assert sorted(d.result for d in fan_out(range(12), work, workers=3)) == list(range(12))
    assert state["most"] == 3  # the pool was used, and never beyond its size


def test_one_worker_runs_in_order_on_the_callers_thread():
    seen = []
    done = list(fan_out("abc", lambda x: seen.append((x, threading.current_thread())) or x, workers=1))
    assert [d.item for d in done] == list("abc") == [x for x, _ in seen]
    assert {t for _, t in seen} == {threading.current_thread()}


def test_chunks_are_contiguous_runs_in_order():
    names = [f"t{i:03d}" for i in range(7)]
    assert chunks(names, 3) == [names[0:3], names[3:6], names[6:7]]
    assert chunks(names, 50) == [names]
    assert [c for batch in chunks(names, 2) for c in batch] == names
    with pytest.raises(ValueError):
        chunks(names, 0)
