"""The open-file pool: LRU bounded by count and by (reported) bytes."""

from __future__ import annotations

import pytest

from gateway.store.pool import OpenPool


def test_count_bound_evicts_least_recently_used():
    pool: OpenPool[str, str] = OpenPool(max_count=2, max_bytes=1000)
    assert pool.put("a", "A", 1) == []
    assert pool.put("b", "B", 1) == []
    pool.get("a")  # b is now the least recently used
    assert pool.put("c", "C", 1) == ["B"]
    assert sorted(pool.values()) == ["A", "C"]


def test_byte_bound_evicts_until_within_bytes():
    pool: OpenPool[str, str] = OpenPool(max_count=100, max_bytes=100)
    pool.put("a", "A", 40)
    pool.put("b", "B", 40)
    assert pool.put("c", "C", 50) == ["A"]
    assert pool.total_bytes == 90
    assert pool.put("d", "D", 95) == ["B", "C"]
    assert (len(pool), pool.total_bytes) == (1, 95)


def test_value_larger_than_the_bound_does_not_stay():
    pool: OpenPool[str, str] = OpenPool(max_count=10, max_bytes=100)
    pool.put("a", "A", 10)
    assert pool.put("huge", "H", 101) == ["A", "H"]
    assert (len(pool), pool.total_bytes) == (0, 0)


def test_growth_reported_by_resize_evicts_others_first():
    pool: OpenPool[str, str] = OpenPool(max_count=10, max_bytes=100)
    pool.put("a", "A", 30)
    pool.put("b", "B", 30)
    assert pool.resize("b", "B", 80) == ["A"]  # b grew (a chunk index learnt): a leaves
    assert (list(pool.values()), pool.total_bytes) == (["B"], 80)


def test_resize_of_a_replaced_value_changes_nothing():
    pool: OpenPool[str, str] = OpenPool(max_count=10, max_bytes=100)
    pool.put("a", "new", 10)
    assert pool.resize("a", "old", 1000) == []
    assert pool.total_bytes == 10


def test_put_over_a_key_returns_the_replaced_value():
    pool: OpenPool[str, str] = OpenPool(max_count=10, max_bytes=100)
    pool.put("a", "old", 10)
    assert pool.put("a", "new", 20) == ["old"]
    assert (pool.get("a"), pool.total_bytes) == ("new", 20)


def test_remove_only_the_value_still_there():
    pool: OpenPool[str, str] = OpenPool(max_count=10, max_bytes=100)
    pool.put("a", "new", 10)
    assert not pool.remove("a", "old")
    assert pool.remove("a", "new")
    assert (len(pool), pool.total_bytes) == (0, 0)


def test_bounds_are_validated():
    with pytest.raises(ValueError):
        OpenPool(max_count=0, max_bytes=1)
