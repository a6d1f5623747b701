"""Benchmark of ``POST /facebook.explore``: 1,000 pages, a Graph API answering each call in 50 ms.

Run by hand from the repository root::

    python bench/explore.py [--pages 1000] [--latency-ms 50] [--runs 5]

It serves the fake Graph API (tests/fake_graph.py) with the pages of one user, creates a fresh PostgreSQL
database, and starts the service in its production shape: ``airy-actors web`` and the Procfile's
``airy-actors worker`` as subprocesses, on the local Redis under a namespace of their own. It times the
explore over HTTP a few times and compares the median with a floor measured in the same run: the
sequential time of the /me/accounts paging calls alone, which no fan-out can beat. Everything it created
(processes, database, Redis keys) is removed at the end.

Environment: ``AIRY_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), ``AIRY_BENCH_POSTGRES_URL``
(an existing database to connect to for CREATE DATABASE; default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx
from _harness import Bench, procfile_command, say

from airy_actors.graph import GraphClient

USER_TOKEN = "EAA-bench-user-token"
WARM_UP_TOKEN = "EAA-bench-warm-up-token"
EXPLORE_TIMEOUT_S = 120


def explore(client: httpx.Client, auth_token: str) -> tuple[float, list[dict]]:
    """One explore over HTTP, polling the job if the endpoint answers 202. Returns the seconds and the pages."""
    started = time.perf_counter()
    answer = client.post("/facebook.explore", json={"auth_token": auth_token})
    if answer.status_code == 202:
        job_id = answer.json()["job_id"]
        while answer.status_code == 202 or answer.json().get("status") == "pending":
            time.sleep(0.02)
            answer = client.post("/jobs.info", json={"job_id": job_id})
        elapsed = time.perf_counter() - started
        body = answer.json()
        if body["status"] != "succeeded":
            raise SystemExit(f"the explore job failed: {body}")
        return elapsed, body["result"]["data"]
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"explore answered {answer.status_code}: {answer.text}")
    return elapsed, answer.json()["data"]


def paging_floor(graph_url: str, auth_token: str) -> tuple[float, int]:
    """The sequential time of the /me/accounts paging calls alone, and how many calls they were."""
    client = GraphClient(graph_url, timeout_ms=30_000)
    try:
        started = time.perf_counter()
        calls = sum(1 for _ in client.managed_pages(auth_token))
        return time.perf_counter() - started, calls
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with Bench("explore") as bench:
        fake = bench.fake_graph
        say(f"fake Graph API on {fake.url}: {args.pages} pages, {args.latency_ms} ms a call")
        page_ids = [str(10**14 + number) for number in range(args.pages)]
        for page_id in page_ids:
            fake.add_page(page_id, f"Page {page_id}", f"EAA-bench-page-token-{page_id}")
        fake.add_user(USER_TOKEN, page_ids)
        fake.add_page("999", "Warm-up page", "EAA-bench-warm-up-page")
        fake.add_user(WARM_UP_TOKEN, ["999"])
        fake.latency_ms = args.latency_ms

        sync_wait = {"AIRY_SYNC_TIMEOUT_MS": "60000"}
        bench.start_worker(sync_wait)
        web = bench.start_web(sync_wait)
        say(f"service up on {web.url}")

        with httpx.Client(base_url=web.url, timeout=EXPLORE_TIMEOUT_S) as client:
            for _ in range(2):  # workers import lazily and pools fill on first use
                explore(client, WARM_UP_TOKEN)
            say("warmed up")

            floor, calls = paging_floor(fake.url, USER_TOKEN)
            say(f"floor: {calls} sequential /me/accounts calls take {floor:.3f} s")

            timings = []
            for run in range(1, args.runs + 1):
                elapsed, data = explore(client, USER_TOKEN)
                if [page["page_id"] for page in data] != page_ids or not all("image_url" in p for p in data):
                    raise SystemExit(f"run {run}: the explore did not list every page with its picture")
                timings.append(elapsed)
                say(f"run {run}/{args.runs}: {elapsed:.3f} s for {len(data)} pages")

    median = statistics.median(timings)
    sequential = (calls + args.pages) * args.latency_ms / 1000
    print()
    print(f"pages                     {args.pages} ({calls} Graph result pages), {args.latency_ms} ms per call")
    print(f"worker                    {' '.join(procfile_command('worker')[1:])}")
    print(f"explore, median of {args.runs}     {median:.3f} s  (min {min(timings):.3f}, max {max(timings):.3f})")
    print(f"floor: paging alone       {floor:.3f} s")
    print(f"ratio explore / floor     {median / floor:.2f}")
    print(f"one call after another    ~{sequential:.1f} s (estimate: {calls + args.pages} calls x latency)")
    print(f"goal                      under 5 s: {'met' if median < 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
