"""``facebook.disconnect``: unsubscribed at Facebook, token deleted, events of the page ignored."""

from __future__ import annotations

from airy_actors.channels import begin_disconnect
from airy_actors.models import Channel, Message, WebhookRequest
from tests.channels.pages import PAGE_ID, PAGE_TOKEN
from tests.fake_graph import TRANSIENT
from tests.support import entry, sign, text_message, wait_until, webhook_body
from workers.channels import sweep_disconnects


def token_deleted(channel_id: str) -> bool:
    return Channel.get_by_id(channel_id).page_token is None


def test_disconnect_unsubscribes_the_page_and_deletes_its_token(api, worker, page, fake_graph, connect):
    channel = connect()
    assert PAGE_ID in fake_graph.subscriptions

    answer = api.post("/facebook.disconnect", json={"channel_id": channel["id"]})

    assert (answer.status_code, answer.json()) == (202, {})
    wait_until(lambda: token_deleted(channel["id"]), message="the token was not deleted")
    assert PAGE_ID not in fake_graph.subscriptions
    info = api.post("/channels.info", json={"channel_id": channel["id"]}).json()
    assert info["connected"] is False and info["webhook_subscribed"] is False
    assert api.post("/channels.list", json={}).json() == {"data": []}


def test_disconnecting_twice_is_202_both_times(api, worker, page, fake_graph, connect):
    channel = connect()

    first = api.post("/facebook.disconnect", json={"channel_id": channel["id"]})
    wait_until(lambda: token_deleted(channel["id"]), message="the token was not deleted")
    second = api.post("/channels.facebook.disconnect", json={"channel_id": channel["id"]})

    assert (first.status_code, second.status_code) == (202, 202)
    assert len(fake_graph.find_requests("DELETE", f"/{PAGE_ID}/subscribed_apps")) == 1


def test_disconnecting_an_unknown_channel_is_400(api):
    answer = api.post("/facebook.disconnect", json={"channel_id": "5b2c7a7e-0000-4000-8000-000000000000"})

    assert answer.status_code == 400
    assert "channel_id" in answer.json()["message"]


def test_a_token_facebook_no_longer_accepts_does_not_stop_the_disconnect(api, worker, page, fake_graph, connect):
    channel = connect()
    fake_graph.invalidate_token(PAGE_TOKEN)

    assert api.post("/facebook.disconnect", json={"channel_id": channel["id"]}).status_code == 202

    wait_until(lambda: token_deleted(channel["id"]), message="the token was not deleted")
    assert Channel.get_by_id(channel["id"]).connected is False


def test_facebook_unavailable_is_retried_until_unsubscribed(api, worker, page, fake_graph, connect):
    channel = connect()
    fake_graph.fail("DELETE", f"/{PAGE_ID}/subscribed_apps", error=TRANSIENT, status=500, times=2)

    api.post("/facebook.disconnect", json={"channel_id": channel["id"]})

    wait_until(lambda: token_deleted(channel["id"]), timeout=20, message="the token was not deleted")
    assert PAGE_ID not in fake_graph.subscriptions


def test_events_of_a_disconnected_page_produce_no_messages(api, worker, page, connect):
    channel = connect()
    api.post("/facebook.disconnect", json={"channel_id": channel["id"]})
    body = webhook_body(entry(PAGE_ID, text_message(PAGE_ID, "2001", "m_after", "still there?")))

    assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200

    wait_until(
        lambda: WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).count() == 1,
        message="the event was not processed",
    )
    assert Message.select().count() == 0


def test_a_disconnect_whose_message_was_lost_is_finished_by_the_sweeper(worker, page, fake_graph, db):
    # Given a channel disconnected long ago whose actor message never ran (a crash)
    channel = Channel.create(source_channel_id=PAGE_ID, name="Acme", page_token=PAGE_TOKEN)
    begin_disconnect(channel.id)
    Channel.update(updated_at=0).where(Channel.id == channel.id).execute()

    assert sweep_disconnects() == 1

    wait_until(lambda: token_deleted(channel.id), message="the sweeper did not finish the disconnect")
    assert fake_graph.find_requests("DELETE", f"/{PAGE_ID}/subscribed_apps")
