"""``facebook.connect`` over real HTTP, with the actor on real Redis and the fake Graph API."""

from __future__ import annotations

import pytest

from airy_actors.graph import WEBHOOK_FIELDS
from airy_actors.models import Channel, Job
from tests.channels.pages import PAGE_ID, PAGE_NAME, PAGE_PICTURE, PAGE_TOKEN
from tests.fake_graph import INVALID_TOKEN, MALFORMED_TOKEN, TRANSIENT
from tests.support import entry, sign, text_message, wait_until, webhook_body

SEED_REQUEST = {
    "page_id": "fb-page-id-1",
    "page_token": "authentication token",
    "name": "My custom name for this page",
    "image_url": "https://example.org/custom-image.jpg",
}


def test_seed_sample_request_answers_the_seed_sample_response_with_health(api, worker, fake_graph):
    # Given the seed's page at Facebook
    fake_graph.add_page("fb-page-id-1", "Page at Facebook", "authentication token")

    # When the seed's sample request is posted
    answer = api.post("/facebook.connect", json=SEED_REQUEST)

    # Then the seed's sample response comes back, plus the health fields
    assert answer.status_code == 200, answer.text
    channel = answer.json()
    assert channel == {
        "id": channel["id"],
        "name": "My custom name for this page",
        "image_url": "https://example.org/custom-image.jpg",
        "source": "facebook",
        "source_channel_id": "fb-page-id-1",
        "connected": True,
        "webhook_subscribed": True,
        "token_valid": True,
    }
    assert set(fake_graph.subscriptions["fb-page-id-1"]) == set(WEBHOOK_FIELDS)
    assert api.post("/channels.info", json={"channel_id": channel["id"]}).json() == channel


def test_name_and_picture_default_to_the_page_at_facebook(api, worker, page):
    answer = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN})

    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == PAGE_NAME
    assert answer.json()["image_url"] == PAGE_PICTURE


def test_the_token_of_another_page_is_refused(api, worker, page, fake_graph):
    # Given a token that belongs to page 1002
    fake_graph.add_page("1002", "Other", "EAA-other-page-token")

    answer = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": "EAA-other-page-token"})

    assert answer.status_code == 400
    assert answer.json() == {"message": f"page_token does not belong to page {PAGE_ID}"}
    assert Channel.select().count() == 0
    assert fake_graph.subscriptions == {}


@pytest.mark.parametrize(
    ("token", "error"),
    [("not-a-token", MALFORMED_TOKEN), (PAGE_TOKEN, INVALID_TOKEN)],
    ids=["malformed", "invalidated"],
)
def test_a_token_facebook_rejects_is_400_with_facebooks_reason(api, worker, page, fake_graph, token, error):
    fake_graph.invalidate_token(PAGE_TOKEN)

    answer = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": token})

    assert answer.status_code == 400
    assert answer.json() == {"message": error["message"]}
    assert Channel.select().count() == 0


def test_facebook_failing_again_and_again_is_503(api, worker, page, fake_graph):
    # Given Facebook answers every call with a transient 500
    fake_graph.fail("*", "*", error=TRANSIENT, status=500, times=-1)

    answer = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN})

    assert answer.status_code == 503
    assert "Facebook" in answer.json()["message"]
    assert len(fake_graph.find_requests("GET", "/me")) == 3  # the first attempt and two retries
    assert Channel.select().count() == 0


def test_facebook_not_answering_in_time_is_503(serve_app, worker, page, fake_graph):
    # Given Facebook answers later than AIRY_GRAPH_TIMEOUT_MS (2 s in the tests), every time
    fake_graph.fail("GET", "/me", delay_ms=2_500, times=-1)

    with serve_app(sync_timeout_ms=30_000) as api:
        answer = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN}, timeout=40)

    assert answer.status_code == 503
    assert answer.json() == {"message": "Facebook is unavailable: Facebook did not answer in time"}


def test_a_transient_error_is_retried_and_connects(api, worker, page, fake_graph):
    fake_graph.fail("POST", "/*/subscribed_apps", error=TRANSIENT, status=500, times=1)

    answer = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN})

    assert answer.status_code == 200, answer.text
    assert PAGE_ID in fake_graph.subscriptions


def test_reconnecting_keeps_the_channel_id_and_takes_the_new_token(api, worker, page, fake_graph, connect):
    first = connect(name="Old name")
    # Given Facebook issued a new token for the page (the old one stops working)
    fake_graph.add_page(PAGE_ID, PAGE_NAME, "EAA-new-token-1001", picture_url=PAGE_PICTURE)

    second = connect(page_token="EAA-new-token-1001", name="New name")

    assert second["id"] == first["id"]
    assert second["name"] == "New name"
    assert Channel.select().count() == 1
    assert Channel.get_by_id(first["id"]).page_token == "EAA-new-token-1001"
    # And the new token is the one used from now on
    assert api.post("/facebook.disconnect", json={"channel_id": first["id"]}).status_code == 202
    wait_until(lambda: fake_graph.find_requests("DELETE", f"/{PAGE_ID}/subscribed_apps"), message="no unsubscribe")
    assert fake_graph.find_requests("DELETE", f"/{PAGE_ID}/subscribed_apps")[0].token == "EAA-new-token-1001"


def test_reconnecting_a_disconnected_page_connects_it_again(api, worker, page, fake_graph, connect):
    channel = connect()
    api.post("/facebook.disconnect", json={"channel_id": channel["id"]})
    wait_until(lambda: Channel.get_by_id(channel["id"]).page_token is None, message="token not deleted")

    again = connect()

    assert again["id"] == channel["id"]
    assert again["connected"] is True and again["webhook_subscribed"] is True
    assert PAGE_ID in fake_graph.subscriptions


def test_a_slow_connect_answers_202_and_the_job_tells_the_outcome(serve_app, worker, page, fake_graph):
    # Given Facebook answers slower than the endpoint waits
    fake_graph.latency_ms = 200

    with serve_app(sync_timeout_ms=50) as api:
        answer = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN})

        assert answer.status_code == 202
        assert answer.json() == {"job_id": answer.json()["job_id"], "status": "pending"}
        job_id = answer.json()["job_id"]
        assert api.post("/jobs.info", json={"job_id": job_id}).json() == {"job_id": job_id, "status": "pending"}

        info = wait_until(
            lambda: _ended(api.post("/jobs.info", json={"job_id": job_id}).json()), message="the job did not end"
        )

    assert info["status"] == "succeeded"
    channel = Channel.get()
    assert info["result"]["id"] == channel.id and info["result"]["source_channel_id"] == PAGE_ID
    assert set(info) == {"job_id", "status", "result"}


def test_a_job_that_runs_out_of_retries_fails_with_a_reason(serve_app, worker, page, fake_graph):
    fake_graph.fail("*", "*", error=TRANSIENT, status=500, times=-1)

    with serve_app(sync_timeout_ms=50) as api:
        job_id = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN}).json()["job_id"]
        info = wait_until(
            lambda: _ended(api.post("/jobs.info", json={"job_id": job_id}).json()), message="the job did not end"
        )

    assert info == {"job_id": job_id, "status": "failed", "error": f"Facebook is unavailable: {TRANSIENT['message']}"}


def test_a_job_answered_at_once_is_not_kept(api, worker, page):
    assert api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN}).status_code == 200
    assert api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": "wrong"}).status_code == 400

    assert Job.select().count() == 0


def test_a_job_answered_202_keeps_no_token_once_it_ended(serve_app, worker, page, fake_graph):
    fake_graph.latency_ms = 100

    with serve_app(sync_timeout_ms=50) as api:
        job_id = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN}).json()["job_id"]
        assert PAGE_TOKEN in str(Job.get_by_id(job_id).arguments)  # kept while the sweeper may need it
        wait_until(lambda: Job.get_by_id(job_id).status == "succeeded", message="the job did not end")

    assert PAGE_TOKEN not in str(Job.get_by_id(job_id).arguments)


def test_jobs_info_of_an_unknown_job_is_404(api):
    answer = api.post("/jobs.info", json={"job_id": "00000000-0000-0000-0000-000000000000"})

    assert answer.status_code == 404
    assert "job_id" in answer.json()["message"]


def test_a_page_connected_this_way_receives_its_messages(api, worker, page, connect):
    channel = connect()
    body = webhook_body(entry(PAGE_ID, text_message(PAGE_ID, "2001", "m_hello", "hello")))

    assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200

    listing = wait_until(
        lambda: api.post("/conversations.list", json={}).json()["data"], message="no conversation appeared"
    )
    assert listing[0]["channel"]["id"] == channel["id"]
    assert listing[0]["last_message"]["content"]["message"]["text"] == "hello"


def test_the_channels_aliases_answer_like_the_facebook_endpoints(api, worker, page):
    answer = api.post("/channels.facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN})

    assert answer.status_code == 200, answer.text
    assert answer.json()["source_channel_id"] == PAGE_ID


def _ended(info: dict) -> dict | None:
    return info if info["status"] != "pending" else None
