"""Each way of fetching gives librdkafka the settings it stands for (``kafka/fetching.py``):
a gathering follower's fetch ends after at most ``GATHER_WAIT_MS`` whatever came, so a
lone record is never held for the bytes it lacks."""

from __future__ import annotations

from computeinfra.kafka.fetching import (
    FETCH_WAIT_MS,
    GATHER_WAIT_MS,
    LONG_FETCH_WAIT_MS,
    Fetching,
    fetch_config,
)


def test_prompt_and_long_followers_take_any_news_at_once() -> None:
    assert fetch_config(Fetching.PROMPT) == {"fetch.wait.max.ms": FETCH_WAIT_MS}
    assert fetch_config(Fetching.LONG) == {"fetch.wait.max.ms": LONG_FETCH_WAIT_MS}


def test_a_gathering_follower_waits_for_news_a_second_at_most() -> None:
    config = fetch_config(Fetching.GATHER)
    assert config["fetch.wait.max.ms"] == GATHER_WAIT_MS <= 1_000
    assert config["fetch.min.bytes"] > 1
