"""Tokens never leave: not in any answer, not in any log line of the API or the actors."""

from __future__ import annotations

import logging

from airy_actors.logs import QUIET_LOGGERS, JsonFormatter
from tests.channels.pages import PAGE_ID, PAGE_TOKEN
from tests.fake_graph import TRANSIENT
from tests.support import wait_until
from workers.channels import check_channel_health

USER_TOKEN = "EAAUserToken-never-logged"
OTHER_PAGE_TOKENS = [f"EAAPageToken-{number}-never-logged" for number in range(30)]


def test_no_token_appears_in_answers_or_logs(api, serve_app, worker, page, fake_graph, caplog):
    # Logs as production writes them at AIRY_LOG_LEVEL=DEBUG: the libraries that log secrets kept quiet.
    for name in QUIET_LOGGERS:
        caplog.set_level(logging.WARNING, logger=name)
    caplog.set_level(logging.DEBUG)  # last: it sets the capturing handler's level too
    for number, token in enumerate(OTHER_PAGE_TOKENS):
        fake_graph.add_page(str(6000 + number), f"Page {number}", token)
    fake_graph.add_user(USER_TOKEN, [PAGE_ID, *(str(6000 + number) for number in range(30))])
    fake_graph.invalidate_token(OTHER_PAGE_TOKENS[3])
    secrets = [PAGE_TOKEN, USER_TOKEN, *OTHER_PAGE_TOKENS]
    answers = []

    # When a page is connected (after a retried transient error), explored, checked, listed and disconnected
    fake_graph.fail("POST", f"/{PAGE_ID}/subscribed_apps", error=TRANSIENT, status=500, times=1)
    connected = api.post("/facebook.connect", json={"page_id": PAGE_ID, "page_token": PAGE_TOKEN})
    answers.append(connected)
    channel_id = connected.json()["id"]
    answers.append(api.post("/facebook.connect", json={"page_id": "6001", "page_token": PAGE_TOKEN}))
    answers.append(api.post("/facebook.explore", json={"auth_token": USER_TOKEN}))
    with serve_app(sync_timeout_ms=1) as impatient:  # the 202 path, and jobs.info
        job_id = impatient.post("/facebook.explore", json={"auth_token": USER_TOKEN}).json()["job_id"]
        answers.append(
            wait_until(
                lambda: (lambda a: a if a.json()["status"] == "succeeded" else None)(
                    impatient.post("/jobs.info", json={"job_id": job_id})
                ),
                message="the explore job did not succeed",
            )
        )
    check_channel_health.send(channel_id)
    wait_until(lambda: fake_graph.find_requests("GET", f"/{PAGE_ID}/subscribed_apps"), message="no health check")
    answers.append(api.post("/channels.list", json={}))
    answers.append(api.post("/channels.info", json={"channel_id": channel_id}))
    answers.append(api.post("/facebook.disconnect", json={"channel_id": channel_id}))
    wait_until(lambda: PAGE_ID not in fake_graph.subscriptions, message="not unsubscribed")

    # Then no answer and no log record holds a token
    assert [answer.status_code for answer in answers] == [200, 400, 200, 200, 200, 200, 202]
    for answer in answers:
        assert not [secret for secret in secrets if secret in answer.text], answer.text
    lines = [_everything(record) for record in caplog.records]
    assert len(lines) > 10
    leaks = [line for line in lines if any(secret in line for secret in secrets)]
    assert leaks == []


def _everything(record: logging.LogRecord) -> str:
    """The record as the JSON log line, plus its raw arguments and exception."""
    return " ".join([JsonFormatter().format(record), repr(record.args), repr(record.__dict__), record.exc_text or ""])
