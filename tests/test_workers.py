"""The worker pool: results for every item, crash isolation, clean shutdown."""

import multiprocessing
import os
import time

import pytest

from simlib.library.workers import WorkerCrash, WorkerPool


def double_or_die(context, item):
    if item == 3:
        os._exit(1)  # a hard crash, as a segfault inside a decoder would be
    return (context, item * 2)


def make_context():
    return "ctx"


def test_in_process_pool_runs_setup_once():
    with WorkerPool(1, setup=make_context) as pool:
        results = dict(pool.map(double_or_die, [1, 2]))
    assert results == {1: ("ctx", 2), 2: ("ctx", 4)}


def test_a_crashing_item_costs_only_itself():
    with WorkerPool(2, setup=make_context) as pool:
        results = dict(pool.map(double_or_die, range(8)))
    assert set(results) == set(range(8))
    assert isinstance(results[3], WorkerCrash)
    assert all(results[i] == ("ctx", 2 * i) for i in range(8) if i != 3)


def test_interrupting_the_consumer_stops_the_workers():
    with pytest.raises(KeyboardInterrupt), WorkerPool(2) as pool:
        for _item, _result in pool.map(double_or_die, [1, 2, 4, 5]):
            raise KeyboardInterrupt
    deadline = time.monotonic() + 10  # terminated processes take a moment to be reaped
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()
