"""Benchmark of what metrics cost: webhook acceptance and send throughput with metrics on, as ratios to off.

Run by hand from the repository root, alone on the machine::

    python bench/metrics_overhead.py [--rounds 2] [--seconds 10] [--connections 64] [--messages 3000]

Both measurements run the Procfile's processes against a fresh PostgreSQL database and the local Redis (see
``_harness.py``), once with ``AIRY_METRICS=off`` and once with metrics on (the default: every process writes
its counters to prometheus_client's multiprocess files, the web counts each request, the worker each actor
run), in the same run, alternating which goes first from round to round, so that both see the same machine:

1. send throughput, as ``bench/send.py`` measures it: ``--messages`` POST /messages.send over 32 connections,
   delivered by the Procfile's worker through the fake Send API answering in ``--latency-ms``; the rate runs
   from the first POST to the last message delivered;
2. webhook acceptance, as ``bench/webhook_acceptance.py`` measures it: signed batches of ``--events`` events
   POSTed over ``--connections`` keep-alive connections for ``--seconds``, no worker running (so it comes
   second: a worker started after it would spend the send runs ingesting its requests).

While metrics are on, ``GET /metrics`` is scraped every ``--scrape-interval`` seconds (default 5, more often
than Prometheus usually does). Reported: each rate on and off, their ratio per round and the median ratio,
and the CPU per request (web) or per message (web and worker). Goal: each median ratio at least 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from _harness import Bench, HttpProcess, WebhookBatches, Worker, machine, say, wait_for
from send import (
    CONVERSATIONS_PER_PAGE,
    delivery_counts,
    post_all,
    prepare_conversations,
    send_request,
    worker_command,
)
from webhook_acceptance import measure

PAGE_ID = "1001"
MODES = ("off", "on")
GOAL = 0.95


@dataclass
class Run:
    """One measurement: its rate, and CPU seconds per unit of work."""

    rate: float
    cpu_ms: float


class Scraper:
    """Scrapes ``GET /metrics`` every ``interval_s`` in a thread, as Prometheus would, while metrics are on."""

    def __init__(self, url: str, interval_s: float) -> None:
        self.url = url
        self.interval_s = interval_s
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.failures:
            raise SystemExit(f"{self.failures} scrapes of GET /metrics failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                ok = httpx.get(f"{self.url}/metrics", timeout=10).status_code == 200
            except httpx.HTTPError:
                ok = False
            self.scrapes += ok
            self.failures += not ok


def environment(bench: Bench, mode: str) -> dict[str, str]:
    """The processes' environment in ``mode``: metrics on or off, a data directory of the benchmark's own."""
    return {"AIRY_METRICS": mode, "AIRY_DATA_DIR": str(Path(bench.log_dir) / "data")}


def scraped(web: HttpProcess, mode: str, interval_s: float, run: Callable[[], Run]) -> Run:
    if mode == "off":
        if httpx.get(f"{web.url}/metrics", timeout=5).status_code != 404:
            raise SystemExit("AIRY_METRICS=off still serves GET /metrics")
        return run()
    with Scraper(web.url, interval_s) as scraper:
        result = run()
    say(f"  ({scraper.scrapes} scrapes meanwhile)")
    return result


def webhook_round(bench: Bench, batches: WebhookBatches, args: argparse.Namespace, mode: str) -> Run:
    say(f"webhook acceptance, metrics {mode}")
    web = bench.start_web(environment(bench, mode))
    if not bench.query("SELECT 1 FROM channel LIMIT 1"):
        bench.create_channel(PAGE_ID)

    def run() -> Run:
        measured = measure(web, bench, batches, args, args.connections)
        return Run(measured.rate, measured.cpu_us["server"] / 1000)

    result = scraped(web, mode, args.scrape_interval, run)
    bench.stop_all()
    return result


def send_round(bench: Bench, conversations: list[str], args: argparse.Namespace, mode: str) -> Run:
    say(f"send throughput, metrics {mode}")
    env = environment(bench, mode)
    web = bench.start_web(env)
    if not conversations:
        conversations.extend(prepare_conversations(bench, args.pages))
    worker = Worker(worker_command(None, None), {**bench.env, **env}, bench.log_dir)
    bench.processes.append(worker)
    watch = bench.connect()
    try:
        _, delivered_before, _, _ = delivery_counts(watch)
        warm = [send_request(conversations[page * CONVERSATIONS_PER_PAGE], "warm") for page in range(args.pages)]
        post_all(web.port, warm, 1)
        wait_for(lambda: delivery_counts(watch)[1] >= delivered_before + args.pages, 60, "the warm-up messages")
        _, delivered_before, failed_before, _ = delivery_counts(watch)
        requests = [
            send_request(conversations[number % len(conversations)], f"Answer {number}")
            for number in range(args.messages)
        ]

        def run() -> Run:
            cpu_before = web.cpu_seconds() + worker.cpu_seconds()
            statuses, first_post_ms = post_all(web.port, requests, 32)
            if statuses[200] != args.messages:
                raise SystemExit(f"answers other than 200: {dict(statuses)}")
            deadline = time.monotonic() + args.timeout
            while (counts := delivery_counts(watch))[0] > 0:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{counts[0]} messages still pending after {args.timeout:.0f} s")
                time.sleep(0.5)
            _, delivered, failed, last_ms = counts
            if delivered - delivered_before != args.messages or failed != failed_before:
                raise SystemExit(f"delivered {delivered - delivered_before} of {args.messages}, failed {failed}")
            cpu_s = web.cpu_seconds() + worker.cpu_seconds() - cpu_before
            assert last_ms is not None
            rate = args.messages / ((last_ms - first_post_ms) / 1000)
            say(f"  {rate:.0f} messages delivered/s; web and worker CPU {cpu_s / args.messages * 1000:.2f} ms/message")
            return Run(rate, cpu_s / args.messages * 1000)

        result = scraped(web, mode, args.scrape_interval, run)
    finally:
        watch.close()
    bench.stop_all()
    return result


def report(title: str, unit: str, cpu_unit: str, runs: dict[str, list[Run]]) -> float:
    ratios = [on.rate / off.rate for off, on in zip(runs["off"], runs["on"], strict=True)]
    ratio = statistics.median(ratios)
    print(title)
    for mode in MODES:
        rates = ", ".join(f"{run.rate:.0f}" for run in runs[mode])
        cpu = statistics.median(run.cpu_ms for run in runs[mode])
        print(
            f"  metrics {mode:<3}  {statistics.median(r.rate for r in runs[mode]):8.0f} {unit} (rounds: {rates});"
            f" CPU {cpu:.3f} ms/{cpu_unit} (median)"
        )
    print(
        f"  ratio on/off  {ratio:8.3f}  (rounds: {', '.join(f'{r:.3f}' for r in ratios)});"
        f" goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'}"
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time of each webhook run")
    parser.add_argument("--warm-up", type=float, default=3.0, help="unmeasured time before each webhook run")
    parser.add_argument("--connections", type=int, default=64, help="connections of the webhook runs")
    parser.add_argument("--events", type=int, default=10, help="events in each webhook request")
    parser.add_argument("--messages", type=int, default=3000, help="messages of each send run")
    parser.add_argument("--pages", type=int, default=4, help="pages the messages are spread over (250/s each)")
    parser.add_argument("--latency-ms", type=int, default=100, help="how long the fake Send API takes to answer")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every delivery")
    parser.add_argument("--scrape-interval", type=float, default=5.0, help="seconds between scrapes while on")
    parser.add_argument("--log-level", default="INFO", help="AIRY_LOG_LEVEL of the processes (production: INFO)")
    parser.add_argument("--only", choices=("webhook", "send"), help="measure one of the two")
    args = parser.parse_args()

    say(machine())
    webhook: dict[str, list[Run]] = {mode: [] for mode in MODES}
    sends: dict[str, list[Run]] = {mode: [] for mode in MODES}
    with Bench("metrics-overhead", log_level=args.log_level) as bench:
        assert bench.fake_graph is not None
        bench.fake_graph.latency_ms = args.latency_ms
        batches = WebhookBatches(PAGE_ID, events_per_batch=args.events)
        conversations: list[str] = []
        for measured, runs, one_round in (
            ("send", sends, lambda mode: send_round(bench, conversations, args, mode)),
            ("webhook", webhook, lambda mode: webhook_round(bench, batches, args, mode)),
        ):
            if args.only not in (None, measured):
                continue
            for number in range(args.rounds):
                order = MODES if number % 2 == 0 else tuple(reversed(MODES))
                say(f"{measured} round {number + 1}/{args.rounds}: metrics {' then '.join(order)}")
                for mode in order:
                    runs[mode].append(one_round(mode))

    print()
    print(f"machine                   {machine()}")
    met = True
    if webhook["on"]:
        title = f"webhook acceptance ({args.connections} connections, {args.events} events a request, no worker)"
        met &= report(title, "requests/s", "request (web)", webhook) >= GOAL
    if sends["on"]:
        title = f"send throughput ({args.messages} messages, fake Send API answering in {args.latency_ms} ms)"
        met &= report(title, "messages/s", "message (web and worker)", sends) >= GOAL
    print(f"goal                      each ratio at least {GOAL}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
