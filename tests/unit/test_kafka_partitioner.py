"""The caching partitioner sends every key where Kafka's default partitioner would, so records
from our producers and anyone else's land on the same partition for one customer."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from shared.kafka import CachingPartitioner, murmur2

cached = CachingPartitioner(size=50)


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_same_partition_as_kafka_default(key: bytes, count: int) -> None:
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert cached(key, partitions, partitions) == expected
    assert cached(key, partitions, partitions) == expected  # from the cache this time


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)
