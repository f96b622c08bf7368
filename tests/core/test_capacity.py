"""Capacity units as DynamoDB's developer guide computes them, on its own examples."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.capacity import (
    item_size,
    number_size,
    page_read_units,
    read_units,
    value_size,
    write_units,
)


def test_a_string_counts_its_utf8_bytes_and_its_name() -> None:
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"name": {"S": "é"}}) == 4 + 2


def test_numbers_count_significant_digits_not_their_text() -> None:
    assert number_size("1") == 2
    assert number_size("100000") == 2  # trailing zeros are not significant
    assert number_size("0.000123") == 3
    assert number_size("12345") == 4
    assert number_size("-12345") == 5


def test_lists_and_maps_count_three_bytes_and_one_per_element() -> None:
    assert value_size({"L": [{"S": "ab"}, {"BOOL": True}]}) == 3 + (1 + 2) + (1 + 1)
    assert value_size({"M": {"k": {"N": "7"}}}) == 3 + 1 + 1 + 2
    assert value_size({"NULL": True}) == 1
    assert value_size({"SS": ["a", "bc"]}) == 3


def test_binary_counts_decoded_bytes() -> None:
    assert value_size({"B": "AAECAw=="}) == 4


def test_read_units_round_up_per_4kb_and_halve_when_not_consistent() -> None:
    assert read_units(1, consistent=True) == 1
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(0, consistent=False) == 0.5  # a miss costs the minimum
    assert read_units(100, consistent=True, transactional=True) == 2


def test_write_units_round_up_per_kb() -> None:
    assert write_units(500) == 1
    assert write_units(1025) == 2
    assert write_units(3500, transactional=True) == 8


def test_a_page_rounds_once_over_every_item_it_read() -> None:
    row = {"leaseKey": {"S": "x" * 290}}  # 8 + 290 bytes
    assert page_read_units([row] * 13, consistent=True) == 1  # 3,874 bytes
    assert page_read_units([row] * 14, consistent=True) == 2
    assert page_read_units([row] * 1000, consistent=True) == 73


@given(st.lists(st.integers(min_value=0, max_value=500_000), min_size=2))
def test_one_page_never_costs_more_than_reading_each_item_alone(sizes: list[int]) -> None:
    alone = sum(read_units(size, consistent=True) for size in sizes)
    assert read_units(sum(sizes), consistent=True) <= alone


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_units_never_shrink_as_items_grow(smaller: int, extra: int) -> None:
    assert write_units(smaller) <= write_units(smaller + extra)
    assert read_units(smaller, consistent=False) <= read_units(smaller + extra, consistent=False)
