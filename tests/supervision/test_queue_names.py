"""The one list of queues: every actor's queue is on it, and ``--queues`` accepts only its names."""

from __future__ import annotations

import pytest

from workers import queues
from workers.broker import broker


def test_every_actor_consumes_a_listed_queue_and_every_listed_queue_has_an_actor():
    # Given every actor declared (tests/conftest.py imports workers.actors)
    declared = {actor.queue_name for actor in (broker.get_actor(name) for name in broker.get_declared_actors())}
    # Then the list names exactly their queues
    assert declared == set(queues.ALL)


def test_a_list_of_queues_is_read_in_order_without_repeats_or_blanks():
    assert queues.parse_queues("deliveries") == ("deliveries",)
    assert queues.parse_queues(" sending, ingestion,,sending ") == ("sending", "ingestion")


def test_an_unknown_queue_is_named_with_the_known_ones():
    with pytest.raises(queues.UnknownQueue) as raised:
        queues.parse_queues("ingestion,delivery")
    assert raised.value.name == "delivery"
    assert "unknown queue 'delivery'" in str(raised.value) and "deliveries" in str(raised.value)


def test_an_empty_list_of_queues_is_refused():
    with pytest.raises(ValueError, match="at least one queue"):
        queues.parse_queues(" , ")
