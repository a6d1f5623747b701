"""Channel health: the periodic check flags broken tokens and subscribes again where Facebook dropped us."""

from __future__ import annotations

from airy_actors.models import Channel
from tests.channels.pages import PAGE_ID, PAGE_TOKEN
from tests.fake_graph import PERMISSION_DENIED, TRANSIENT
from tests.support import wait_until
from workers.channels import check_channel_health, check_channels_health


def health(api, channel_id: str) -> tuple[bool, bool]:
    info = api.post("/channels.info", json={"channel_id": channel_id}).json()
    return info["token_valid"], info["webhook_subscribed"]


def test_an_invalidated_token_is_flagged(api, worker, page, fake_graph, connect):
    channel = connect()
    fake_graph.invalidate_token(PAGE_TOKEN)

    check_channel_health.send(channel["id"])

    wait_until(lambda: health(api, channel["id"])[0] is False, message="the token was not flagged")
    assert Channel.get_by_id(channel["id"]).connected is True


def test_a_dropped_subscription_is_subscribed_again(api, worker, page, fake_graph, connect):
    channel = connect()
    fake_graph.unsubscribe_app(PAGE_ID)

    check_channel_health.send(channel["id"])

    wait_until(lambda: PAGE_ID in fake_graph.subscriptions, message="the page was not subscribed again")
    assert health(api, channel["id"]) == (True, True)


def test_a_subscription_facebook_refuses_is_flagged(api, worker, page, fake_graph, connect):
    channel = connect()
    fake_graph.unsubscribe_app(PAGE_ID)
    fake_graph.fail("POST", f"/{PAGE_ID}/subscribed_apps", error=PERMISSION_DENIED, times=-1)

    check_channel_health.send(channel["id"])

    wait_until(lambda: health(api, channel["id"]) == (True, False), message="the subscription was not flagged")


def test_a_healthy_check_clears_earlier_flags(api, worker, page, connect):
    channel = connect()
    Channel.update(token_valid=False, webhook_subscribed=False).where(Channel.id == channel["id"]).execute()

    check_channel_health.send(channel["id"])

    wait_until(lambda: health(api, channel["id"]) == (True, True), message="the flags were not cleared")


def test_facebook_unavailable_changes_nothing(api, worker, page, fake_graph, connect, caplog):
    channel = connect()
    fake_graph.fail("GET", "/me", error=TRANSIENT, status=500, times=-1)

    check_channel_health.send_with_options(args=(channel["id"],), max_retries=0)

    wait_until(
        lambda: any(record.getMessage().startswith("channel health unknown") for record in caplog.records),
        message="the health check did not give up",
    )
    assert health(api, channel["id"]) == (True, True)


def test_the_periodic_check_looks_at_every_connected_channel_on_its_own(api, worker, fake_graph, connect):
    # Given two connected pages, one of them dropped by Facebook
    fake_graph.add_page("4001", "One", "EAA-token-4001")
    fake_graph.add_page("4002", "Two", "EAA-token-4002")
    connect(page_id="4001", page_token="EAA-token-4001")
    connect(page_id="4002", page_token="EAA-token-4002")
    fake_graph.unsubscribe_app("4002")

    check_channels_health.send()

    wait_until(lambda: "4002" in fake_graph.subscriptions, message="the dropped page was not subscribed again")
    wait_until(lambda: fake_graph.find_requests("GET", "/4001/subscribed_apps"), message="page 4001 was not checked")
