"""Channel domain code without a server: reading Graph pages ahead, flagging tokens."""

from __future__ import annotations

import threading

import pytest

from airy_actors.channels import flag_token_invalid, save_channel
from airy_actors.explore import read_ahead
from airy_actors.models import Channel


def test_read_ahead_yields_every_item_in_order():
    assert list(read_ahead(iter([[1], [2], [3], [4]]), 2)) == [[1], [2], [3], [4]]


def test_read_ahead_raises_the_error_of_the_fetching_thread():
    def pages():
        yield [1]
        raise ValueError("Facebook went away")

    with pytest.raises(ValueError, match="Facebook went away"):
        list(read_ahead(pages(), 2))


def test_leaving_read_ahead_early_stops_its_thread():
    produced = []

    def pages():
        for number in range(1000):
            produced.append(number)
            yield [number]

    ahead = read_ahead(pages(), 2)
    assert next(ahead) == [0]
    ahead.close()

    thread = next((t for t in threading.enumerate() if t.name == "explore-read-ahead"), None)
    if thread is not None:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert len(produced) < 10


def test_flagging_a_token_invalid_shows_on_the_channel(any_db):
    channel = save_channel(Channel(source_channel_id="8001", name="Eight", page_token="EAA-8001"), new=True)

    flag_token_invalid(channel.id)
    flag_token_invalid(channel.id)

    assert Channel.get_by_id(channel.id).token_valid is False


def test_connect_reconnect_update_and_disconnect_on_each_database(any_db, fake_graph):
    from airy_actors import channels
    from airy_actors.graph import get_graph_client

    fake_graph.add_page("8002", "Acme", "EAA-8002-a", picture_url="https://cdn.example/8002.png")
    graph = get_graph_client()

    first = channels.connect_page(graph, page_id="8002", page_token="EAA-8002-a")
    fake_graph.add_page("8002", "Acme", "EAA-8002-b")
    second = channels.connect_page(graph, page_id="8002", page_token="EAA-8002-b", name="Mine")
    updated = channels.update_channel(first["id"], name=None, image_url="https://example.org/x.png")
    assert channels.begin_disconnect(first["id"]) is True
    channels.finish_disconnect(graph, first["id"], last_attempt=True)

    assert first["image_url"] == "https://cdn.example/8002.png"
    assert second["id"] == first["id"] and second["name"] == "Mine"
    assert updated["name"] == "Mine" and updated["image_url"] == "https://example.org/x.png"
    stored = Channel.get_by_id(first["id"])
    assert (stored.connected, stored.page_token) == (False, None)
    assert "8002" not in fake_graph.subscriptions
    assert channels.begin_disconnect(first["id"]) is False
