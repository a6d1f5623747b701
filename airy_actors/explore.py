"""Exploring the pages a user token manages, with the per-page work fanned out across actors.

The coordinator pages through ``/me/accounts`` and, as each Graph result page arrives, hands its pages to
a group of actor messages, one a page, so the per-page Graph calls overlap the paging that remains. Each
member writes what it found into a Redis hash under the job's id; whoever notices that the last finding is
in (a member, or the coordinator once it knows the total) joins the findings with ``connected`` from the
database and finishes the job. No worker thread ever waits on another, so explores cannot starve the pool.

Page tokens are needed by the members but must not ride in broker messages, which Dramatiq logs whole when
an actor fails: they wait in a Redis hash that expires after :data:`TOKEN_TTL_MS`, and each member deletes
its page's token as soon as it is done. Findings hold no token.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import redis

from airy_actors import channels, jobs
from airy_actors.graph import GraphClient, GraphError

logger = logging.getLogger(__name__)

TOKEN_TTL_MS = 5 * 60_000
FINDINGS_TTL_MS = 15 * 60_000
KEEP_ALIVE_EVERY_MS = 10_000  # how often a long explore tells the sweeper it is alive
READ_AHEAD = 4  # Graph result pages fetched while earlier ones are being fanned out


@dataclass(frozen=True)
class PageTask:
    """One page to look at: the arguments of one member message (no token)."""

    page_id: str
    name: str
    position: int
    check_subscription: bool
    instagram_account_id: str | None = None  # from /me/accounts: the page's linked Instagram account


@dataclass(frozen=True)
class Finding:
    """What a member found about one page."""

    page_id: str
    name: str
    position: int
    image_url: str | None
    subscribed: bool | None
    instagram_account_id: str | None = None


class ExploreState:
    """The Redis side of one explore job: page tokens waiting for members, findings, the expected total.

    Parameters:
      client: a Redis client.
      namespace: the broker's namespace.
      job_id: the explore job.
    """

    def __init__(self, client: redis.Redis, namespace: str, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        prefix = f"{namespace}:explore:{job_id}"
        self.alive_key = f"{namespace}:job-alive:{job_id}"
        self.tokens_key = f"{prefix}:tokens"
        self.findings_key = f"{prefix}:findings"
        self.expected_key = f"{prefix}:expected"

    def store_tokens(self, tokens: dict[str, str]) -> None:
        if tokens:
            self.client.pipeline().hset(self.tokens_key, mapping=tokens).pexpire(
                self.tokens_key, TOKEN_TTL_MS
            ).execute()

    def token(self, page_id: str) -> str | None:
        value = self.client.hget(self.tokens_key, page_id)
        return value.decode() if value is not None else None

    def record(self, finding: Finding) -> bool:
        """Stores a finding and forgets its page's token. Returns whether every finding is now in."""
        pipe = self.client.pipeline()
        pipe.hset(self.findings_key, finding.page_id, json.dumps(asdict(finding)))
        pipe.pexpire(self.findings_key, FINDINGS_TTL_MS)
        pipe.hdel(self.tokens_key, finding.page_id)
        pipe.hlen(self.findings_key)
        pipe.get(self.expected_key)
        *_, count, expected = pipe.execute()
        return expected is not None and count >= int(expected)

    def expect(self, total: int) -> bool:
        """Records how many findings make the whole. Returns whether they are all in already."""
        pipe = self.client.pipeline()
        pipe.set(self.expected_key, total, px=FINDINGS_TTL_MS)
        pipe.hlen(self.findings_key)
        _, count = pipe.execute()
        return count >= total

    def complete_findings(self) -> list[Finding] | None:
        """Every finding, in /me/accounts order; None when some are missing (or were joined already)."""
        pipe = self.client.pipeline()
        pipe.get(self.expected_key)
        pipe.hvals(self.findings_key)
        expected, values = pipe.execute()
        if expected is None or len(values) < int(expected):
            return None
        findings = [Finding(**json.loads(value)) for value in values]
        return sorted(findings, key=lambda finding: finding.position)

    def keep_alive(self) -> None:
        """Touches the job at most every KEEP_ALIVE_EVERY_MS, so a long fan-out is not taken for a lost one."""
        try:
            first = self.client.set(self.alive_key, "1", nx=True, px=KEEP_ALIVE_EVERY_MS)
        except redis.RedisError:
            first = True  # without Redis, the database says it
        if first:
            jobs.touch(self.job_id)

    def clear(self) -> None:
        self.client.delete(self.tokens_key, self.findings_key, self.expected_key)


def explore_pages(
    graph: GraphClient, state: ExploreState, job_id: str, auth_token: str, fan_out: Callable[[list[PageTask]], None]
) -> int:
    """Pages through the pages ``auth_token`` manages, handing each Graph result page to ``fan_out``.

    Safe to run again for the same job: members of an earlier run record the same findings.

    Returns:
      How many pages there are.

    Raises:
      GraphError: when Facebook refuses the token (400 for the client) or cannot be reached.
    """
    seen: set[str] = set()
    for accounts in read_ahead(graph.managed_pages(auth_token), READ_AHEAD):
        state.keep_alive()
        fresh: list[tuple[int, str, dict[str, Any]]] = []  # (position, page id, page)
        for page in accounts:
            page_id = str(page.get("id") or "")
            if page_id and page_id not in seen:
                fresh.append((len(seen), page_id, page))
                seen.add(page_id)
        if not fresh:
            continue
        state.store_tokens({page_id: page["access_token"] for _, page_id, page in fresh if page.get("access_token")})
        connected = channels.connected_channels([page_id for _, page_id, _ in fresh])
        fan_out(
            [
                PageTask(
                    page_id, str(page.get("name") or ""), position, page_id in connected, _linked_account(page)
                )
                for position, page_id, page in fresh
            ]
        )
    return len(seen)


def _linked_account(page: dict[str, Any]) -> str | None:
    """The id of the Instagram account linked to a page of /me/accounts, when it has one."""
    linked = page.get("instagram_business_account")
    account_id = linked.get("id") if isinstance(linked, dict) else None
    return str(account_id) if isinstance(account_id, str | int) and account_id != "" else None


def read_ahead(pages: Iterator[list[dict[str, Any]]], depth: int) -> Iterator[list[dict[str, Any]]]:
    """Yields what ``pages`` yields, fetching up to ``depth`` items ahead in a thread of its own.

    Paging is sequential by nature (each answer holds the next link) and sets the pace of the whole
    explore, so the next Graph call must not wait while the previous result page is fanned out. An error
    of the fetching thread is raised here; leaving the loop early stops that thread.
    """
    done = object()
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(item: Any) -> bool:
        """Queues ``item`` unless the consumer has left, which would leave this thread blocked forever."""
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for item in pages:
                if not hand(item):
                    return
            hand(done)
        except BaseException as error:  # handed to the consumer, which raises it
            hand(error)

    thread = threading.Thread(target=fetch, name="explore-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def explore_page(
    graph: GraphClient, state: ExploreState, task: PageTask, *, app_id: str | None, last_attempt: bool
) -> bool:
    """Looks at one page with its own token: its picture, and whether our app is subscribed to it.

    Facebook refusing a call leaves the page listed without those; a transient error is raised to be
    retried, except on the last attempt.

    Returns:
      Whether every finding of the job is now in.
    """
    token = state.token(task.page_id)
    name, image_url, subscribed = task.name, None, None
    if token is not None:
        try:
            page = graph.page(task.page_id, token)
            name = str(page.get("name") or name)
            image_url = channels.picture_url(page)
            if task.check_subscription:
                subscribed = any(str(app.get("id")) == app_id for app in graph.subscribed_apps(task.page_id, token))
        except GraphError as error:
            if error.retryable and not last_attempt:
                raise
            logger.info("explore: page details unavailable", extra={"page_id": task.page_id, "kind": error.kind.value})
    finding = Finding(task.page_id, name, task.position, image_url, subscribed, task.instagram_account_id)
    return state.record(finding)


@dataclass(frozen=True)
class Joined:
    """The outcome of a join: whether it finished the job, and connected pages found unsubscribed."""

    finished: bool
    unsubscribed_channel_ids: list[str]


def join(state: ExploreState, job_id: str) -> Joined:
    """Finishes the job with every finding and ``connected`` from the database, once all are in."""
    findings = state.complete_findings()
    if findings is None:
        return Joined(False, [])
    page_ids = [finding.page_id for finding in findings]
    connected = channels.connected_channels(page_ids)
    data = []
    for finding in findings:
        entry: dict[str, Any] = {"page_id": finding.page_id, "name": finding.name}
        if finding.image_url:
            entry["image_url"] = finding.image_url
        entry["connected"] = finding.page_id in connected
        if finding.instagram_account_id:
            entry["instagram_account_id"] = finding.instagram_account_id
        data.append(entry)
    finished = jobs.succeed(job_id, {"data": data})
    state.clear()
    # Facebook dropped our subscription of a page we consider connected: its health check will re-subscribe.
    unsubscribed = [connected[f.page_id] for f in findings if f.subscribed is False and f.page_id in connected]
    return Joined(finished, unsubscribed)
