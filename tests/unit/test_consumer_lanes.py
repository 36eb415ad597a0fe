"""A large batch split into lanes keeps each customer's records together and in order."""

from __future__ import annotations

from shared.consumer import LANE_MIN_RECORDS, Record, lanes_of


def _record(offset: int, key: str, partition: int = 0) -> Record:
    return Record("jm.profile-events", partition, offset, key.encode(), b"{}", {}, (), 0)


def test_a_large_batch_splits_by_key_with_each_customers_records_in_order() -> None:
    records = [_record(i, f"customer-{i % 37}", partition=i % 6) for i in range(600)]
    lanes = lanes_of(records, 2)
    assert len(lanes) == 2
    assert sorted(r.offset for lane in lanes for r in lane) == list(range(600))
    owner: dict[bytes | None, int] = {}
    for n, lane in enumerate(lanes):
        assert [r.offset for r in lane] == sorted(r.offset for r in lane)
        for r in lane:
            assert owner.setdefault(r.key, n) == n  # one customer, one lane
    assert min(len(lane) for lane in lanes) > 600 // 4  # keys balance the lanes


def test_small_batches_and_a_single_lane_stay_whole() -> None:
    small = [_record(i, f"c-{i}") for i in range(LANE_MIN_RECORDS - 1)]
    assert lanes_of(small, 2) == [small]
    large = [_record(i, f"c-{i}") for i in range(LANE_MIN_RECORDS * 2)]
    assert lanes_of(large, 1) == [large]
