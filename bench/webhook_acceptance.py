"""Benchmark of ``POST /facebook``: signed batches accepted (stored, committed, enqueued, answered 200) a second.

Run by hand from the repository root::

    python bench/webhook_acceptance.py [--connections 16,64] [--seconds 10] [--rounds 2] [--events 10]

Its ceiling is measured in the same run, with the same load generator and the same requests: a bare
Starlette endpoint that reads the body and answers 200, served by uvicorn with the options of ``airy-actors
web``. Then the Procfile's ``airy-actors web`` runs against a fresh PostgreSQL database and the local Redis
(a broker namespace of its own, no worker consuming, so that the web has the CPU to itself as the bare
endpoint had). Each round measures both, at each number of connections; the summary gives the medians and
their ratio, and the CPU time each request cost the server, PostgreSQL, Redis and the load generator (the
four share the cores, so each one's CPU bounds the rate). It checks that every request answered 200 was
stored once and enqueued once.

The goal (at least 40% of the ceiling) compares capacities: each server's best rate over the numbers of
connections. The bare endpoint reaches its best with few connections, since it only has CPU to spend; the web
waits for each batch's commit, so few connections leave it idle between commits, and it reaches its best when
more requests arrive during each commit, as they do from Facebook under load.

The load generator is an asyncio HTTP/1.1 client in this process: keep-alive connections, each sending its
next request as soon as the previous one is answered; every request is a new batch of ``--events`` text
messages with mids never sent before, signed with the app secret.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _harness import Bench, HttpProcess, WebhookBatches, machine, run_load, say, summary_ms

PAGE_ID = "1001"


def measure(
    server: HttpProcess, bench: Bench, batches: WebhookBatches, args: argparse.Namespace, connections: int
) -> Round:
    """One load run against ``server``: its rate, and each process's CPU time per request over the whole run."""
    meters: dict[str, Callable[[], float]] = {
        "server": server.cpu_seconds,
        "postgres": bench.postgres_cpu_seconds,
        "redis": redis_cpu_seconds,
        "load": load_generator_cpu_seconds,
    }
    before = {name: meter() for name, meter in meters.items()}
    sent_before = batches.count
    result = run_load(
        server.port,
        lambda number: batches.next_request(),
        connections=connections,
        duration_s=args.seconds,
        warm_up_s=args.warm_up,
    )
    sent = batches.count - sent_before  # the warm-up's requests too: the CPU is measured from the start
    cpu_us = {name: (meter() - before[name]) / sent * 1e6 for name, meter in meters.items()}
    others = {status: count for status, count in result.statuses.items() if status != 200}
    if others:
        raise SystemExit(f"answers other than 200: {others}")
    rate = f"{result.rate:.0f} requests/s ({result.rate * args.events:.0f} events/s)"
    say(f"  {connections} connections: {rate}; {summary_ms(result.latencies_s)}")
    say("  CPU per request: " + ", ".join(f"{name} {us:.0f} µs" for name, us in cpu_us.items()))
    return Round(result.rate, cpu_us)


@dataclass
class Round:
    """What one load run measured: requests answered 200 a second, and CPU µs per request by process."""

    rate: float
    cpu_us: dict[str, float]


def redis_cpu_seconds() -> float:
    """CPU time used so far by the local redis-server processes (shared: other clients count too)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "redis-server":
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            continue
    return total


def load_generator_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="16,64", help="comma-separated: each is measured in each round")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time of each run")
    parser.add_argument("--warm-up", type=float, default=3.0, help="unmeasured time before each run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--events", type=int, default=10, help="events in each request")
    parser.add_argument("--log-level", default="INFO", help="AIRY_LOG_LEVEL of the web (production: INFO)")
    args = parser.parse_args()
    connections = [int(count) for count in args.connections.split(",")]

    # (connections, round) → the run
    ceilings: dict[int, list[Round]] = {count: [] for count in connections}
    accepted: dict[int, list[Round]] = {count: [] for count in connections}
    with Bench("webhook-acceptance", log_level=args.log_level) as bench:
        batches = WebhookBatches(PAGE_ID, events_per_batch=args.events)
        sent_to_web = 0
        for round_number in range(1, args.rounds + 1):
            say(f"round {round_number}/{args.rounds}: the bare endpoint (ceiling)")
            bare = bench.start_bare_endpoint()
            for count in connections:
                ceilings[count].append(measure(bare, bench, batches, args, count))
            bench.stop_all()

            say(f"round {round_number}/{args.rounds}: airy-actors web")
            web = bench.start_web()
            if round_number == 1:
                bench.create_channel(PAGE_ID)
            before = batches.count
            for count in connections:
                accepted[count].append(measure(web, bench, batches, args, count))
            sent_to_web += batches.count - before
            bench.stop_all()

        stored, enqueued = count_stored_and_enqueued(bench)
        if stored != sent_to_web or enqueued != stored:
            raise SystemExit(
                f"sent {sent_to_web} requests to the web: {stored} stored; enqueued once each: {enqueued >= 0}"
            )
        say(f"every request sent to the web was stored once ({stored}) and enqueued once ({enqueued})")

    print()
    print(f"machine                   {machine()}")
    print(f"load                      closed loop, {args.events} events a request, runs of {args.seconds:.0f} s")
    best_ceiling, best_rate = 0.0, 0.0
    for count in connections:
        ceiling = statistics.median(r.rate for r in ceilings[count])
        rate = statistics.median(r.rate for r in accepted[count])
        best_ceiling, best_rate = max(best_ceiling, ceiling), max(best_rate, rate)
        # Each round's own ratio too: the two runs of a round are close in time, so they share the machine's load.
        by_round = ", ".join(
            f"{web.rate / bare.rate:.2f}" for bare, web in zip(ceilings[count], accepted[count], strict=True)
        )
        print(f"{count} connections")
        print(f"  bare endpoint (ceiling) {ceiling:8.0f} requests/s  (rounds: {rounds(ceilings[count])})")
        events = f"{rate * args.events:.0f} events/s"
        print(f"  airy-actors web         {rate:8.0f} requests/s  (rounds: {rounds(accepted[count])}); {events}")
        print(f"  ratio web / ceiling     {rate / ceiling:8.2f}  (rounds: {by_round})")
        for label, runs in (("CPU/request, bare", ceilings[count]), ("CPU/request, web", accepted[count])):
            medians = {name: statistics.median(r.cpu_us[name] for r in runs) for name in runs[0].cpu_us}
            print(f"  {label:<24}" + ", ".join(f"{name} {us:.0f} µs" for name, us in medians.items()) + " (medians)")
    ratio = best_rate / best_ceiling
    print(f"capacity (best of each)   web {best_rate:.0f} / bare {best_ceiling:.0f} requests/s = {ratio:.2f}")
    print(f"goal                      at least 0.40: {'met' if ratio >= 0.40 else 'NOT met'}")
    return 0


def rounds(runs: list[Round]) -> str:
    return ", ".join(f"{r.rate:.0f}" for r in runs)


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
        if message["actor_name"] == "ingest_webhook_requests":
            named.extend(message["args"][0])
        elif message["actor_name"] == "ingest_webhook_request":
            named.append(message["args"][0])
    enqueued = len(named) if len(named) == len(set(named)) and set(named) == stored else -1
    return len(stored), enqueued


if __name__ == "__main__":
    sys.exit(main())
