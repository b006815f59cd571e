import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computeinfra.metrics import QuantileSketch, SlidingRate


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@settings(max_examples=200)
@given(
    st.lists(st.floats(min_value=1e-5, max_value=1e5), min_size=1, max_size=500),
    st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]),
)
def test_quantiles_are_within_relative_accuracy(values: list[float], q: float) -> None:
    sketch = QuantileSketch(relative_accuracy=0.01)
    for value in values:
        sketch.add(value)
    got = sketch.quantile(q)
    want = exact_quantile(values, q)
    assert got is not None
    assert abs(got - want) <= 0.0101 * want


def test_memory_does_not_grow_with_the_count() -> None:
    sketch = QuantileSketch()
    for i in range(200_000):
        sketch.add(0.001 + (i % 1000) / 100)
    assert sketch.count == 200_000
    assert sketch.buckets < 600  # log-range buckets, not one per sample


def test_empty_and_zero() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    assert sketch.summary()["p99"] is None
    sketch.add(0.0)
    assert sketch.quantile(0.5) == 0.0
    with pytest.raises(ValueError):
        sketch.add(-1)


def test_sliding_rate_forgets_old_seconds() -> None:
    now = [1000.0]
    rate = SlidingRate(60, clock=lambda: now[0])
    rate.add(5)
    now[0] += 30
    rate.add(2)
    assert rate.total() == 7
    now[0] += 31
    assert rate.total() == 2
    now[0] += 60
    assert rate.total() == 0
    assert rate.per_second() == 0
