"""Benchmark of what metrics cost: webhook acceptance and send throughput with metrics on, as ratios to off.

Run by hand from the repository root, alone on the machine::

    python bench/metrics_overhead.py [--pairs 5] [--seconds 5] [--connections 64] [--messages 1500]

Two sets of the Procfile's processes run side by side against one fresh PostgreSQL database and the local Redis
(see ``_harness.py``), each on a broker namespace of its own: one with ``AIRY_METRICS=off``, one with metrics
on (the default: every process writes its counters to prometheus_client's multiprocess files, the web counts
each request, the worker each actor run). The load goes to one set at a time, in short bursts that alternate
between them (``--pairs`` of bursts, which one goes first alternating too), so that both see the same machine:
a machine shared with others changes speed from minute to minute, and a long run of each would measure that.

1. send throughput, as ``bench/send.py`` measures it: a burst is ``--messages`` POST /messages.send over 32
   connections, delivered by the Procfile's worker through the fake Send API answering in ``--latency-ms``; its
   rate runs from the first POST to the last message delivered;
2. webhook acceptance, as ``bench/webhook_acceptance.py`` measures it: a burst is ``--seconds`` of signed
   batches of ``--events`` events over ``--connections`` keep-alive connections, after a second of warm-up.
   The workers are stopped first: no worker runs while the webhook is measured, as in that benchmark.

While metrics are on, ``GET /metrics`` is scraped every ``--scrape-interval`` seconds (default 5, more often
than Prometheus usually does). Reported: each rate on and off, the ratio of each pair and their median, and
the CPU per request (web) or per message (web and worker). Goal: each median ratio at least 0.95.
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
from _harness import (
    Bench,
    HttpProcess,
    WebhookBatches,
    Worker,
    free_port,
    machine,
    procfile_command,
    say,
    wait_for,
)
from send import CONVERSATIONS_PER_PAGE, delivery_counts, post_all, prepare_conversations, send_request
from webhook_acceptance import measure

PAGE_ID = "1001"
MODES = ("off", "on")
GOAL = 0.95


@dataclass
class Run:
    """One burst: its rate, and CPU milliseconds per unit of work."""

    rate: float
    cpu_ms: float


@dataclass
class ProcessSet:
    """The web and the worker of one mode, on a broker namespace of their own."""

    mode: str
    env: dict[str, str]
    log_dir: Path
    web: HttpProcess
    worker: Worker | None = None


class Scraper:
    """Scrapes ``GET /metrics`` every ``interval_s`` in a thread, as Prometheus would."""

    def __init__(self, url: str, interval_s: float) -> None:
        self.url = url
        self.interval_s = interval_s
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> None:
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


def start_set(bench: Bench, mode: str) -> ProcessSet:
    """The web of ``mode`` (its worker comes later), logging under a folder of its own."""
    log_dir = Path(bench.log_dir) / mode
    log_dir.mkdir(exist_ok=True)
    env = {
        **bench.env,
        "AIRY_METRICS": mode,
        "AIRY_BROKER_NAMESPACE": f"{bench.namespace}:{mode}",  # removed with the bench's keys at the end
        "AIRY_DATA_DIR": str(Path(bench.log_dir) / "data"),
    }
    port = free_port()
    command = [*procfile_command("web"), "--host", "127.0.0.1", "--port", str(port)]
    web = HttpProcess("web", command, env, log_dir, port, "/health", ready_statuses=(200, 503))
    bench.processes.append(web)
    if mode == "off" and httpx.get(f"{web.url}/metrics", timeout=5).status_code != 404:
        raise SystemExit("AIRY_METRICS=off still serves GET /metrics")
    return ProcessSet(mode, env, log_dir, web)


def start_worker(bench: Bench, processes: ProcessSet) -> None:
    processes.worker = Worker(procfile_command("worker"), processes.env, processes.log_dir)
    bench.processes.append(processes.worker)


def stop_worker(bench: Bench, processes: ProcessSet) -> None:
    if processes.worker is not None:
        processes.worker.stop()
        bench.processes.remove(processes.worker)
        processes.worker = None


def alternate(pairs: int, sets: dict[str, ProcessSet], burst: Callable[[ProcessSet], Run]) -> dict[str, list[Run]]:
    """``pairs`` bursts on each set, alternating, which one goes first alternating too, after one burst on each
    that is not counted (a fresh process's first load runs slower: connections, caches)."""
    for mode in MODES:
        say(f"warm-up burst, metrics {mode} (not counted)")
        burst(sets[mode])
    runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
    for number in range(pairs):
        order = MODES if number % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            say(f"pair {number + 1}/{pairs}, metrics {mode}")
            runs[mode].append(burst(sets[mode]))
    return runs


def send_burst(watch: object, conversations: list[str], args: argparse.Namespace, processes: ProcessSet) -> Run:
    web, worker = processes.web, processes.worker
    assert worker is not None
    _, delivered_before, failed_before, _ = delivery_counts(watch)
    requests = [
        send_request(conversations[number % len(conversations)], f"Answer {number}") for number in range(args.messages)
    ]
    cpu_before = web.cpu_seconds() + worker.cpu_seconds()
    statuses, first_post_ms = post_all(web.port, requests, 32)
    if statuses[200] != args.messages:
        raise SystemExit(f"answers other than 200: {dict(statuses)}")
    deadline = time.monotonic() + args.timeout
    while (counts := delivery_counts(watch))[0] > 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{counts[0]} messages still pending after {args.timeout:.0f} s")
        time.sleep(0.2)
    _, delivered, failed, last_ms = counts
    if delivered - delivered_before != args.messages or failed != failed_before:
        raise SystemExit(f"delivered {delivered - delivered_before} of {args.messages}, failed {failed}")
    assert last_ms is not None
    cpu_ms = (web.cpu_seconds() + worker.cpu_seconds() - cpu_before) / args.messages * 1000
    rate = args.messages / ((last_ms - first_post_ms) / 1000)
    say(f"  {rate:.0f} messages delivered/s; web and worker CPU {cpu_ms:.2f} ms/message")
    return Run(rate, cpu_ms)


def webhook_burst(bench: Bench, batches: WebhookBatches, args: argparse.Namespace, processes: ProcessSet) -> Run:
    measured = measure(processes.web, bench, batches, args, args.connections)
    return Run(measured.rate, measured.cpu_us["server"] / 1000)


def report(title: str, unit: str, cpu_unit: str, runs: dict[str, list[Run]]) -> float:
    ratios = [on.rate / off.rate for off, on in zip(runs["off"], runs["on"], strict=True)]
    ratio = statistics.median(ratios)
    print(title)
    for mode in MODES:
        rates = ", ".join(f"{run.rate:.0f}" for run in runs[mode])
        rate = statistics.median(run.rate for run in runs[mode])
        cpu = statistics.median(run.cpu_ms for run in runs[mode])
        print(f"  metrics {mode:<3}    {rate:8.0f} {unit} (bursts: {rates}); CPU {cpu:.3f} ms/{cpu_unit} (median)")
    cpu_ratio = statistics.median(r.cpu_ms for r in runs["off"]) / statistics.median(r.cpu_ms for r in runs["on"])
    pairs = ", ".join(f"{r:.3f}" for r in ratios)
    print(f"  ratio on/off    {ratio:8.3f}  (pairs: {pairs}); goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'}")
    print(f"  CPU ratio off/on {cpu_ratio:7.3f}  (the work a unit costs without metrics, over with them)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="bursts on each set, alternating")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time of each webhook burst")
    parser.add_argument("--warm-up", type=float, default=1.0, help="unmeasured time before each webhook burst")
    parser.add_argument("--connections", type=int, default=64, help="connections of the webhook bursts")
    parser.add_argument("--events", type=int, default=10, help="events in each webhook request")
    parser.add_argument("--messages", type=int, default=1500, help="messages of each send burst")
    parser.add_argument("--pages", type=int, default=4, help="pages the messages are spread over (250/s each)")
    parser.add_argument("--latency-ms", type=int, default=100, help="how long the fake Send API takes to answer")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every delivery")
    parser.add_argument("--scrape-interval", type=float, default=5.0, help="seconds between scrapes")
    parser.add_argument("--log-level", default="INFO", help="AIRY_LOG_LEVEL of the processes (production: INFO)")
    parser.add_argument("--only", choices=("webhook", "send"), help="measure one of the two")
    args = parser.parse_args()

    say(machine())
    webhook: dict[str, list[Run]] = {}
    sends: dict[str, list[Run]] = {}
    with Bench("metrics-overhead", log_level=args.log_level) as bench:
        assert bench.fake_graph is not None
        bench.fake_graph.latency_ms = args.latency_ms
        sets = {mode: start_set(bench, mode) for mode in MODES}
        scraper = Scraper(sets["on"].web.url, args.scrape_interval).start()
        try:
            if args.only in (None, "send"):
                conversations = prepare_conversations(bench, args.pages)
                for processes in sets.values():
                    start_worker(bench, processes)
                watch = bench.connect()
                try:
                    say("warming up: one message per page through each set")
                    for processes in sets.values():
                        _, before, _, _ = delivery_counts(watch)
                        pages = range(args.pages)
                        post_all(
                            processes.web.port,
                            [send_request(conversations[p * CONVERSATIONS_PER_PAGE], "warm") for p in pages],
                            1,
                        )
                        wait_for(lambda b=before: delivery_counts(watch)[1] >= b + args.pages, 60, "the warm-up")
                    sends = alternate(args.pairs, sets, lambda p: send_burst(watch, conversations, args, p))
                finally:
                    watch.close()
                for processes in sets.values():
                    stop_worker(bench, processes)
            if args.only in (None, "webhook"):
                bench.create_channel(PAGE_ID)
                batches = WebhookBatches(PAGE_ID, events_per_batch=args.events)
                webhook = alternate(args.pairs, sets, lambda p: webhook_burst(bench, batches, args, p))
        finally:
            scraper.stop()
        say(f"{scraper.scrapes} scrapes of the metrics-on web")

    print()
    print(f"machine                   {machine()}")
    met = True
    if sends:
        title = f"send throughput (bursts of {args.messages} messages, fake Send API answering in {args.latency_ms} ms)"
        met &= report(title, "messages/s", "message (web and worker)", sends) >= GOAL
    if webhook:
        title = f"webhook acceptance ({args.connections} connections, {args.events} events a request, no worker)"
        met &= report(title, "requests/s", "request (web)", webhook) >= GOAL
    print(f"goal                      each ratio at least {GOAL}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
