"""Benchmark of ``POST /facebook``: signed batches accepted (stored, committed, enqueued, answered 200) a second.

Run by hand from the repository root::

    python bench/webhook_acceptance.py [--connections 16] [--seconds 10] [--rounds 2] [--events 10]

Its ceiling is measured in the same run, with the same load generator and the same requests: a bare
Starlette endpoint that reads the body and answers 200, served by uvicorn with the options of ``airy-actors
web``. Then the Procfile's ``airy-actors web`` runs against a fresh PostgreSQL database and the local Redis
(a broker namespace of its own, no worker consuming, so that the web has the CPU to itself as the bare
endpoint had). Each round measures both; the summary gives the medians and their ratio (goal: at least
40%). It checks that every request answered 200 was stored once and enqueued once.

The load generator is an asyncio HTTP/1.1 client in this process: ``--connections`` keep-alive connections,
each sending its next request as soon as the previous one is answered; every request is a new batch of
``--events`` text messages with mids never sent before, signed with the app secret.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _harness import Bench, WebhookBatches, machine, run_load, say, summary_ms

PAGE_ID = "1001"


def measure(port: int, batches: WebhookBatches, args: argparse.Namespace) -> float:
    result = run_load(
        port,
        lambda number: batches.next_request(),
        connections=args.connections,
        duration_s=args.seconds,
        warm_up_s=args.warm_up,
    )
    others = {status: count for status, count in result.statuses.items() if status != 200}
    if others:
        raise SystemExit(f"answers other than 200: {others}")
    say(f"  {result.rate:.0f} requests/s ({result.rate * args.events:.0f} events/s); {summary_ms(result.latencies_s)}")
    return result.rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time of each run")
    parser.add_argument("--warm-up", type=float, default=3.0, help="unmeasured time before each run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--events", type=int, default=10, help="events in each request")
    parser.add_argument("--log-level", default="INFO", help="AIRY_LOG_LEVEL of the web (production: INFO)")
    args = parser.parse_args()

    ceilings, accepted = [], []
    with Bench("webhook-acceptance", log_level=args.log_level) as bench:
        batches = WebhookBatches(PAGE_ID, events_per_batch=args.events)
        sent_to_web = 0
        for round_number in range(1, args.rounds + 1):
            say(f"round {round_number}/{args.rounds}: the bare endpoint (ceiling)")
            bare = bench.start_bare_endpoint()
            ceilings.append(measure(bare.port, batches, args))
            bench.stop_all()

            say(f"round {round_number}/{args.rounds}: airy-actors web")
            web = bench.start_web()
            if round_number == 1:
                bench.create_channel(PAGE_ID)
            before = batches.count
            accepted.append(measure(web.port, batches, args))
            sent_to_web += batches.count - before
            bench.stop_all()

        stored, enqueued = count_stored_and_enqueued(bench)
        if stored != sent_to_web or enqueued != stored:
            raise SystemExit(
                f"sent {sent_to_web} requests to the web: {stored} stored; enqueued once each: {enqueued >= 0}"
            )
        say(f"every request sent to the web was stored once ({stored}) and enqueued once ({enqueued})")

    ceiling, rate = statistics.median(ceilings), statistics.median(accepted)
    ratio = rate / ceiling
    print()
    print(f"machine                   {machine()}")
    print(f"load                      {args.connections} connections, closed loop, {args.events} events a request")
    print(f"bare endpoint (ceiling)   {ceiling:8.0f} requests/s  (rounds: {', '.join(f'{r:.0f}' for r in ceilings)})")
    print(f"airy-actors web           {rate:8.0f} requests/s  (rounds: {', '.join(f'{r:.0f}' for r in accepted)})")
    print(f"                          {rate * args.events:8.0f} events/s accepted")
    print(f"ratio web / ceiling       {ratio:8.2f}")
    print(f"goal                      at least 0.40: {'met' if ratio >= 0.40 else 'NOT met'}")
    return 0


def count_stored_and_enqueued(bench: Bench) -> tuple[int, int]:
    """Stored requests in the database, and stored requests named once by the ingestion messages in the broker."""
    import json

    import redis

    connection = bench.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM webhook_event")
            stored = {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()
    named: list[int] = []
    for raw in redis.Redis.from_url(bench.redis_url).hvals(f"{bench.namespace}:ingestion.msgs"):
        message = json.loads(raw)
        if message["actor_name"] == "ingest_webhook_events":
            named.extend(message["args"][0])
        elif message["actor_name"] == "ingest_webhook_event":
            named.append(message["args"][0])
    enqueued = len(named) if len(named) == len(set(named)) and set(named) == stored else -1
    return len(stored), enqueued


if __name__ == "__main__":
    sys.exit(main())
