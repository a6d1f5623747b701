"""``facebook.explore``: paging /me/accounts to the end, the per-page work fanned out across actors."""

from __future__ import annotations

from airy_actors.channels import save_channel
from airy_actors.models import Channel
from tests.fake_graph import INVALID_TOKEN, MALFORMED_TOKEN, TRANSIENT, FakeGraph
from tests.support import wait_until

USER_TOKEN = "EAAUserToken-explore-secret"


def add_pages(fake_graph: FakeGraph, count: int) -> list[str]:
    """``count`` pages managed by USER_TOKEN, each with its own token and picture."""
    page_ids = [str(5000 + number) for number in range(count)]
    for page_id in page_ids:
        fake_graph.add_page(
            page_id, f"Page {page_id}", f"EAA-page-token-{page_id}", f"https://cdn.example/{page_id}.png"
        )
    fake_graph.add_user(USER_TOKEN, page_ids)
    return page_ids


def connect_directly(page_id: str, *, connected: bool = True) -> Channel:
    channel = Channel(source_channel_id=page_id, name=f"Page {page_id}", page_token=f"EAA-page-token-{page_id}")
    channel.connected = connected
    return save_channel(channel, new=True)


def test_explore_follows_every_result_page_and_tells_which_are_connected(api, worker, fake_graph):
    # Given 60 pages (three Graph result pages of 25), two connected and one disconnected
    page_ids = add_pages(fake_graph, 60)
    connect_directly(page_ids[3])
    connect_directly(page_ids[41])
    connect_directly(page_ids[59], connected=False)

    answer = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert [page["page_id"] for page in data] == page_ids
    assert data[0] == {
        "page_id": page_ids[0],
        "name": f"Page {page_ids[0]}",
        "image_url": f"https://cdn.example/{page_ids[0]}.png",
        "connected": False,
    }
    assert [page["page_id"] for page in data if page["connected"]] == [page_ids[3], page_ids[41]]
    assert all(page["image_url"] == f"https://cdn.example/{page['page_id']}.png" for page in data)
    assert len(fake_graph.find_requests("GET", "/*/accounts")) == 3
    # And each page's details were read with that page's own token
    details = fake_graph.find_requests("GET", f"/{page_ids[7]}")
    assert [request.token for request in details] == [f"EAA-page-token-{page_ids[7]}"]


def test_a_page_whose_details_facebook_refuses_is_listed_without_picture(api, worker, fake_graph):
    page_ids = add_pages(fake_graph, 3)
    fake_graph.invalidate_token(f"EAA-page-token-{page_ids[1]}")

    answer = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"][1] == {"page_id": page_ids[1], "name": f"Page {page_ids[1]}", "connected": False}
    assert "image_url" in answer.json()["data"][0]


def test_a_transient_error_of_a_page_is_retried(api, worker, fake_graph):
    page_ids = add_pages(fake_graph, 2)
    fake_graph.fail("GET", f"/{page_ids[0]}", error=TRANSIENT, status=500, times=1)

    answer = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"][0]["image_url"] == f"https://cdn.example/{page_ids[0]}.png"


def test_a_user_without_pages_gets_an_empty_list(api, worker, fake_graph):
    fake_graph.add_user(USER_TOKEN, [])

    answer = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"data": []}


def test_an_invalid_token_is_400_with_facebooks_reason(api, worker, fake_graph):
    add_pages(fake_graph, 2)

    malformed = api.post("/facebook.explore", json={"auth_token": "not-a-token"})
    fake_graph.invalidate_token(USER_TOKEN)
    invalidated = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    assert (malformed.status_code, malformed.json()) == (400, {"message": MALFORMED_TOKEN["message"]})
    assert (invalidated.status_code, invalidated.json()) == (400, {"message": INVALID_TOKEN["message"]})


def test_facebook_unavailable_is_503(api, worker, fake_graph):
    add_pages(fake_graph, 2)
    fake_graph.fail("GET", "/me/accounts", error=TRANSIENT, status=500, times=-1)

    answer = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    assert answer.status_code == 503
    assert answer.json()["message"].startswith("Facebook is unavailable")


def test_a_slow_explore_answers_202_and_the_job_holds_the_pages(serve_app, worker, fake_graph):
    page_ids = add_pages(fake_graph, 30)
    fake_graph.latency_ms = 100

    with serve_app(sync_timeout_ms=50) as api:
        answer = api.post("/channels.facebook.explore", json={"auth_token": USER_TOKEN})
        assert answer.status_code == 202
        job_id = answer.json()["job_id"]
        info = wait_until(
            lambda: (lambda i: i if i["status"] != "pending" else None)(
                api.post("/jobs.info", json={"job_id": job_id}).json()
            ),
            timeout=20,
            message="the explore job did not end",
        )

    assert info["status"] == "succeeded"
    assert [page["page_id"] for page in info["result"]["data"]] == page_ids


def test_no_page_token_is_returned(api, worker, fake_graph):
    add_pages(fake_graph, 30)

    answer = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    assert answer.status_code == 200
    assert "EAA-page-token" not in answer.text and USER_TOKEN not in answer.text


def test_a_connected_page_facebook_unsubscribed_us_from_is_subscribed_again(api, worker, fake_graph):
    # Given a connected page whose subscription Facebook dropped
    page_ids = add_pages(fake_graph, 3)
    connect_directly(page_ids[2])
    fake_graph.unsubscribe_app(page_ids[2])

    answer = api.post("/facebook.explore", json={"auth_token": USER_TOKEN})

    # Then the page is listed as connected, and its health check subscribes our app again
    assert answer.json()["data"][2]["connected"] is True
    wait_until(lambda: page_ids[2] in fake_graph.subscriptions, message="the page was not subscribed again")
