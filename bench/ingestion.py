"""Benchmark of the ingestion pipeline: signed webhook batches to stored messages, end to end.

Run by hand from the repository root::

    python bench/ingestion.py [--events 20000] [--steady-seconds 30] [--steady-rate 200] [--contacts 1000] [--mix]

It creates a fresh PostgreSQL database, serves the fake Graph API (contact profiles), and starts the
Procfile's processes as subprocesses (``airy-actors web`` and ``airy-actors worker`` with the Procfile's
options), on the local Redis under a broker namespace of their own. Then, in the same run:

1. baseline: one client INSERTs and COMMITs one row per event (a row shaped like a message) into a scratch
   table of the same database, as fast as it can, for a few seconds;
2. throughput: ``--events`` events, 10 a request, posted as fast as the web accepts them over 16
   connections, from contacts that wrote before (a warm-up introduces every contact and fetches its
   profile); events per second = events / (last message stored - first request sent). Goal: 1,000/s;
3. steady load: ``--steady-rate`` events a second (requests paced evenly) for ``--steady-seconds``; the lag of
   each event is its message's ``created_at`` (set by the worker in the transaction that stores it) minus
   the time its request was answered 200. Goal: p99 under 500 ms. The resident memory (VmRSS) of every web
   and worker process is sampled meanwhile.

With ``--mix``, the page also has an Instagram channel (its linked account), whose contacts are warmed up
too, and a second throughput run follows the first: the same number of events, every other request an
Instagram body (``"object": "instagram"``) to the account, the others Messenger bodies to the page. Both
runs are reported side by side, so that what Instagram's share of the load costs shows in the same run.

The summary also gives the CPU time per event of the worker, the web and the database's backends during the
throughput run, and the rate that this CPU cost allows on 2 otherwise idle cores: the machine is shared, so
the measured rate depends on what else runs. Every event must end up as exactly one message; the benchmark
stops with an error otherwise.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time

import httpx
from _harness import (
    Bench,
    HttpProcess,
    WebhookBatches,
    Worker,
    machine,
    percentile,
    procfile_command,
    run_load,
    say,
    summary_ms,
    wait_for,
)

PAGE_ID = "1001"
ACCOUNT_ID = "17841400000001001"  # the page's Instagram account, with --mix
EVENTS_PER_REQUEST = 10
DRAIN_TIMEOUT_S = 600.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events of the throughput run")
    parser.add_argument("--connections", type=int, default=16, help="connections of the throughput run")
    parser.add_argument("--steady-rate", type=float, default=200.0, help="events a second of the steady run")
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--contacts", type=int, default=1000, help="distinct contacts writing")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--log-level", default="INFO", help="AIRY_LOG_LEVEL of the processes (production: INFO)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs under bench/results/")
    parser.add_argument(
        "--mix", action="store_true", help="also a throughput run of Messenger and Instagram requests, in turns"
    )
    parser.add_argument(
        "--stalled-receiver",
        action="store_true",
        help="an integrator subscribed whose receiver accepts connections and never answers, during every run",
    )
    args = parser.parse_args()

    with Bench("ingestion", log_level=args.log_level, keep_logs=args.keep_logs) as bench:
        extra = {"AIRY_WEBHOOKS_ALLOW_PRIVATE": "true"} if args.stalled_receiver else {}
        web = bench.start_web(extra)
        worker = bench.start_worker(extra)
        if args.stalled_receiver:
            bench.start_worker(extra, process="deliveries")
            stalled = StalledReceiver().start()
            answer = httpx.post(f"{web.url}/webhooks.subscribe", json={"url": stalled.url}, timeout=10)
            answer.raise_for_status()
            say(f"an integrator subscribed at {stalled.url}, which never answers (each delivery waits its deadline)")
        bench.create_channel(PAGE_ID)
        messenger = WebhookBatches(PAGE_ID, contacts=args.contacts)
        for number in range(args.contacts):
            psid = messenger.contact(number)
            bench.fake_graph.add_contact(psid, "Contact", str(number), f"https://example.com/{psid}.jpg")
        platforms = [("facebook", PAGE_ID)]
        if args.mix:
            bench.create_instagram_channel(PAGE_ID, ACCOUNT_ID)
            instagram = WebhookBatches(ACCOUNT_ID, contacts=args.contacts, platform="instagram")
            for number in range(args.contacts):
                igsid = instagram.contact(number)
                bench.fake_graph.add_instagram_contact(igsid, name=f"Contact {number}", username=f"contact{number}")
            platforms.append(("instagram", ACCOUNT_ID))

        baseline = insert_commit_rate(bench, args.baseline_seconds)
        say(f"baseline: one client INSERT+COMMIT of one row: {baseline:.0f} rows/s")

        # Every contact writes once first, and its profile is fetched: the runs below measure the steady
        # state of a page, where messages come from known conversations.
        say(f"warming up: a first message from each of the {args.contacts} contacts, and their profiles")
        for platform, entry_id in platforms:
            warm_up(bench, web, args, batches(args, platform, entry_id, f"warm{platform[:2]}"))
        pending = "SELECT count(*) FROM contact WHERE profile_state = 'pending'"
        wait_for(lambda: query_one(bench, pending) == 0, 120, "the contacts' profiles")

        burst = [batches(args, "facebook", PAGE_ID, "burst")]
        throughput, accepted_s, cpu = throughput_run(bench, web, worker, args, burst, "Messenger only")
        mixed = None
        if args.mix:
            burst = [batches(args, p, entry_id, f"mix{p[:2]}") for p, entry_id in platforms]
            mixed = throughput_run(bench, web, worker, args, burst, "Messenger and Instagram")
        lags, rss = steady_run(bench, web, worker, args)

    p99 = percentile(lags, 0.99)
    rows = [
        ("machine", machine()),
        ("processes", "; ".join(" ".join(["airy-actors", *procfile_command(p)[1:]]) for p in ("web", "worker"))),
        ("baseline", f"{baseline:.0f} rows/s: one client, INSERT+COMMIT of one message-like row"),
        ("throughput", f"{throughput:.0f} events/s from first request to last message stored"),
        (
            "",
            f"{args.events} events, {EVENTS_PER_REQUEST} a request, {args.connections} connections;"
            f" all accepted after {accepted_s:.1f} s",
        ),
        ("ratio throughput / baseline", f"{throughput / baseline:.2f}"),
        ("CPU per event", ", ".join(f"{name} {seconds * 1e3:.2f} ms" for name, seconds in cpu.items())),
        (
            "capacity on 2 idle cores",
            f"about {2 / sum(cpu.values()):.0f} events/s (2 s of CPU a second / CPU per event)",
        ),
        *(mixed_rows(mixed, throughput, cpu) if mixed is not None else []),
        ("goal 1,000 events/s", "met" if throughput >= 1000 else "NOT met"),
        (
            f"lag at {args.steady_rate:.0f} events/s",
            f"p50 {percentile(lags, 0.5):.0f} ms, p99 {p99:.0f} ms,"
            f" max {max(lags):.0f} ms ({len(lags)} events over {args.steady_seconds:.0f} s)",
        ),
        ("goal p99 under 500 ms", "met" if p99 < 500 else "NOT met"),
        *((f"RSS {name}", f"{size:.1f} MiB (peak under the steady load)") for name, size in rss.items()),
    ]
    print()
    for label, value in rows:
        print(f"{label:32s}{value}")
    return 0


class StalledReceiver:
    """A receiver on 127.0.0.1 that accepts every connection and reads, but never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"

    def start(self) -> StalledReceiver:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            connection, _ = self.server.accept()
            self.connections.append(connection)  # kept open, never answered


def batches(args: argparse.Namespace, platform: str, entry_id: str, tag: str) -> WebhookBatches:
    """The requests of one platform's share of a run."""
    return WebhookBatches(
        entry_id, events_per_batch=EVENTS_PER_REQUEST, contacts=args.contacts, tag=tag, platform=platform
    )


def warm_up(bench: Bench, web: HttpProcess, args: argparse.Namespace, warm: WebhookBatches) -> None:
    """A first message from each contact of ``warm``'s platform, stored."""
    requests = -(-args.contacts // EVENTS_PER_REQUEST)
    run_load(web.port, lambda n: warm.next_request(), connections=4, progress=False, limit=requests)
    wait_for(lambda: stored(bench, warm.tag) >= requests * EVENTS_PER_REQUEST, 120, "the warm-up messages")


def mixed_rows(
    mixed: tuple[float, float, dict[str, float]], throughput: float, cpu: dict[str, float]
) -> list[tuple[str, str]]:
    """The summary's lines of the mixed run, beside the Messenger-only one."""
    rate, accepted_s, mixed_cpu = mixed
    return [
        (
            "throughput, mixed",
            f"{rate:.0f} events/s, every other request Instagram; all accepted after {accepted_s:.1f} s",
        ),
        ("ratio mixed / Messenger only", f"{rate / throughput:.2f}"),
        ("CPU per event, mixed", ", ".join(f"{name} {seconds * 1e3:.2f} ms" for name, seconds in mixed_cpu.items())),
        ("CPU per event, mixed / only", f"{sum(mixed_cpu.values()) / sum(cpu.values()):.2f}"),
    ]


def insert_commit_rate(bench: Bench, seconds: float) -> float:
    """Rows a second that one client INSERTs and COMMITs one at a time (autocommit)."""
    connection = bench.connect()
    content = (
        '{"sender":{"id":"7000000001"},"recipient":{"id":"1001"},"timestamp":1700000000000,'
        '"message":{"mid":"m_baseline","text":"Hello, this is message 1"}}'
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE baseline_message (id varchar(36) PRIMARY KEY, conversation_id varchar(36),"
                " source_message_id varchar(255) UNIQUE, content text, sent_at bigint, created_at bigint)"
            )
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                cursor.execute(
                    "INSERT INTO baseline_message VALUES (%s, %s, %s, %s, %s, %s)",
                    (f"{count:036d}", "c" * 36, f"m_{count}", content, count, count),
                )
                count += 1
            elapsed = time.perf_counter() - started
            cursor.execute("DROP TABLE baseline_message")
    finally:
        connection.close()
    return count / elapsed


def stored(bench: Bench, tag: str) -> int:
    return query_one(bench, "SELECT count(*) FROM message WHERE source_message_id LIKE %s", (f"m_{tag}_%",))


def query_one(bench: Bench, sql: str, params: tuple = ()) -> int:
    return bench.query(sql, params)[0][0]


def throughput_run(
    bench: Bench,
    web: HttpProcess,
    worker: Worker,
    args: argparse.Namespace,
    sources: list[WebhookBatches],
    name: str,
) -> tuple[float, float, dict[str, float]]:
    """Posts ``args.events`` as fast as accepted, the requests taken from ``sources`` in turns.

    Returns:
      Events a second from the first request to the last message, the seconds it took to have every request
      accepted, and the CPU seconds per event of the worker, the web and the database's backends.
    """
    requests = args.events // EVENTS_PER_REQUEST
    expected = {source.tag: 0 for source in sources}
    for number in range(requests):
        expected[sources[number % len(sources)].tag] += EVENTS_PER_REQUEST
    tags = list(expected)
    say(
        f"throughput ({name}): posting {requests} requests of {EVENTS_PER_REQUEST} events"
        f" over {args.connections} connections"
    )
    cpu_before = {"worker": worker.cpu_seconds(), "web": web.cpu_seconds(), "PostgreSQL": bench.postgres_cpu_seconds()}
    started_ms = int(time.time() * 1000)
    started = time.perf_counter()
    result = run_load(
        web.port,
        lambda n: sources[n % len(sources)].next_request(),
        connections=args.connections,
        progress=False,
        limit=requests,
    )
    accepted_s = time.perf_counter() - started
    if result.ok != requests:
        raise SystemExit(f"throughput: {result.ok} of {requests} requests answered 200: {dict(result.statuses)}")
    say(f"throughput ({name}): all accepted in {accepted_s:.1f} s; waiting for the messages")
    last_report = [time.monotonic(), 0]

    def drained() -> bool:
        count = sum(stored(bench, tag) for tag in tags)
        if time.monotonic() - last_report[0] >= 2:
            say(
                f"  {count} of {requests * EVENTS_PER_REQUEST} messages stored"
                f" ({(count - last_report[1]) / (time.monotonic() - last_report[0]):.0f}/s)"
            )
            last_report[:] = [time.monotonic(), count]
        return count >= requests * EVENTS_PER_REQUEST

    wait_for(drained, DRAIN_TIMEOUT_S, "every message of the throughput run", interval_s=0.2)
    cpu_after = {"worker": worker.cpu_seconds(), "web": web.cpu_seconds(), "PostgreSQL": bench.postgres_cpu_seconds()}
    cpu = {key: (cpu_after[key] - cpu_before[key]) / args.events for key in cpu_before}
    last_ms = max(
        query_one(bench, "SELECT max(created_at) FROM message WHERE source_message_id LIKE %s", (f"m_{tag}_%",))
        for tag in tags
    )
    for tag, count in expected.items():
        check_exactly_once(bench, tag, count)
    events_per_s = args.events / ((last_ms - started_ms) / 1000)
    say(f"throughput ({name}): {events_per_s:.0f} events/s from first request to last message")
    return events_per_s, accepted_s, cpu


def steady_run(
    bench: Bench, web: HttpProcess, worker: Worker, args: argparse.Namespace
) -> tuple[list[float], dict[str, float]]:
    """Posts at a steady rate; returns each event's lag (ms) and the peak RSS of each process (MiB)."""
    rate = args.steady_rate / EVENTS_PER_REQUEST
    batches = WebhookBatches(PAGE_ID, events_per_batch=EVENTS_PER_REQUEST, contacts=args.contacts, tag="steady")
    say(f"steady: {args.steady_rate:.0f} events/s ({rate:.0f} requests/s) for {args.steady_seconds:.0f} s")
    peaks: dict[str, float] = {}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.5):
            for name, size in named_rss(web, worker).items():
                peaks[name] = max(peaks.get(name, 0.0), size)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = run_load(
        web.port,
        lambda n: batches.next_request(),
        connections=8,
        duration_s=args.steady_seconds,
        rate=rate,
        progress=False,
    )
    expected = len(result.answered_at_ms) * EVENTS_PER_REQUEST
    if result.ok != batches.count:
        raise SystemExit(f"steady: {result.ok} of {batches.count} requests answered 200: {dict(result.statuses)}")
    wait_for(lambda: stored(bench, "steady") >= expected, 120, "every message of the steady run", interval_s=0.2)
    sampling.set()
    sampler.join()
    check_exactly_once(bench, "steady", expected)
    answered = dict(result.answered_at_ms)
    rows = bench.query("SELECT source_message_id, created_at FROM message WHERE source_message_id LIKE 'm_steady_%'")
    lags = [created_at - answered[int(mid.rsplit("_", 1)[1]) // EVENTS_PER_REQUEST] for mid, created_at in rows]
    say(f"steady: request latency {summary_ms(result.latencies_s)}")
    say(
        f"steady: lag p50 {percentile(lags, 0.5):.0f} ms, p99 {percentile(lags, 0.99):.0f} ms, max {max(lags):.0f} ms,"
        f" mean {statistics.fmean(lags):.0f} ms"
    )
    return lags, peaks


def named_rss(web: HttpProcess, worker: Worker) -> dict[str, float]:
    """RSS of the web and of every worker process, by role."""
    sizes = {"web": sum(web.rss_mb().values())}
    worker_sizes = worker.rss_mb()
    forked = set(worker.worker_pids())
    for index, pid in enumerate(sorted(forked)):
        sizes[f"worker process {index + 1}"] = worker_sizes.get(pid, 0.0)
    supervisors = [size for pid, size in worker_sizes.items() if pid not in forked]
    sizes["worker supervisors (sum)"] = sum(supervisors)
    return sizes


def check_exactly_once(bench: Bench, tag: str, expected: int) -> None:
    distinct = query_one(
        bench, "SELECT count(DISTINCT source_message_id) FROM message WHERE source_message_id LIKE %s", (f"m_{tag}_%",)
    )
    total = stored(bench, tag)
    if (distinct, total) != (expected, expected):
        raise SystemExit(f"{tag}: expected {expected} messages once each, found {total} ({distinct} distinct)")


if __name__ == "__main__":
    sys.exit(main())
