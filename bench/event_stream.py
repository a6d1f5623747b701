"""Benchmark of ``GET /events.stream``: many clients connected while the webhook ingests a steady load.

Run by hand from the repository root, alone on the machine::

    python bench/event_stream.py [--clients 200] [--rate 1000] [--seconds 20] [--contacts 1000]

It creates a fresh PostgreSQL database, serves the fake Graph API, and starts the Procfile's ``web`` and
``worker`` as subprocesses (see ``_harness.py``). Every contact writes once first (its profile is fetched),
before any stream client: nobody listens, so nothing is written to the outbox. Then:

1. ``--clients`` stream clients connect, from a process of their own (asyncio, raw sockets: the benchmark's
   reading must not be what is measured); each records, for every ``id:`` it reads, the wall-clock time of
   the read that completed it;
2. signed webhook requests of 10 text messages each bring ``--rate`` events a second for ``--seconds``
   (requests paced evenly over 8 connections); every message becomes a ``message.created`` event;
3. once every message is stored, each client must have received every outbox event, in the stream's order
   ((tx, id), as the database holds it), none twice.

Reported: whether every client got every event in order, the delay of every (client, event) pair from the
event's writing (``outbox_event.timestamp``, set by the worker in the storing transaction) and from the
webhook request's 200 to the client's read, as p50/p99/max, the clients the web disconnected as slow, and the
web's CPU per event. Goal: every client gets every event, p99 under 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import sys
import threading
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection

import httpx
from _harness import Bench, WebhookBatches, machine, run_load, say, wait_for

PAGE_ID = "1001"
EVENTS_PER_REQUEST = 10
ID_LINE = re.compile(rb"\nid: (\d+)\n")
DELIVERY_TIMEOUT_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200, help="stream clients connected at once")
    parser.add_argument("--rate", type=float, default=1000.0, help="events a second through the webhook")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the load lasts")
    parser.add_argument("--contacts", type=int, default=1000, help="distinct contacts writing")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs under bench/results/")
    args = parser.parse_args()

    with Bench("event_stream", keep_logs=args.keep_logs) as bench:
        web = bench.start_web()
        worker = bench.start_worker()
        bench.create_channel(PAGE_ID)
        warm = WebhookBatches(PAGE_ID, events_per_batch=EVENTS_PER_REQUEST, contacts=args.contacts, tag="warm")
        for number in range(args.contacts):
            psid = warm.contact(number)
            bench.fake_graph.add_contact(psid, "Contact", str(number), f"https://example.com/{psid}.jpg")
        say(f"warming up: a first message from each of the {args.contacts} contacts, and their profiles")
        requests = -(-args.contacts // EVENTS_PER_REQUEST)
        run_load(web.port, lambda n: warm.next_request(), connections=4, progress=False, limit=requests)
        wait_for(lambda: stored(bench, "warm") >= requests * EVENTS_PER_REQUEST, 120, "the warm-up messages")
        pending = "SELECT count(*) FROM contact WHERE profile_state = 'pending'"
        wait_for(lambda: bench.query(pending)[0][0] == 0, 120, "the contacts' profiles")
        written_before = bench.query("SELECT count(*) FROM outbox_event")[0][0]
        say(f"outbox events written before any client: {written_before}")

        say(f"connecting {args.clients} stream clients")
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        readers = context.Process(target=run_clients, args=(web.port, args.clients, theirs), daemon=True)
        readers.start()
        if not ours.poll(60) or ours.recv() != "connected":
            raise SystemExit("the stream clients did not connect")
        clients = httpx.get(f"{web.url}/metrics", timeout=10).text
        say("connected: " + next(line for line in clients.splitlines() if line.startswith("airy_event_stream_clients")))

        steady = WebhookBatches(PAGE_ID, events_per_batch=EVENTS_PER_REQUEST, contacts=args.contacts, tag="steady")
        per_second = args.rate / EVENTS_PER_REQUEST
        say(f"load: {args.rate:.0f} events/s ({per_second:.0f} requests/s) for {args.seconds:.0f} s")
        web_cpu, worker_cpu, postgres_cpu = web.cpu_seconds(), worker.cpu_seconds(), bench.postgres_cpu_seconds()
        probes = Probes(bench, interval_s=0.1)
        probes.start()
        result = run_load(
            web.port,
            lambda n: steady.next_request(),
            connections=8,
            duration_s=args.seconds,
            rate=args.rate / EVENTS_PER_REQUEST,
            progress=False,
        )
        refused = {status: n for status, n in result.statuses.items() if status != 200}
        if refused:
            raise SystemExit(f"load: requests answered other than 200: {refused}")
        expected_messages = steady.count * EVENTS_PER_REQUEST
        wait_for(lambda: stored(bench, "steady") >= expected_messages, 120, "every message of the load", 0.2)
        probes.stop()
        worker_cpu = worker.cpu_seconds() - worker_cpu
        postgres_cpu = bench.postgres_cpu_seconds() - postgres_cpu
        rows = bench.query(
            "SELECT id, timestamp, payload::json->'message'->'content'->'message'->>'mid' FROM outbox_event"
            " ORDER BY tx, id"
        )
        bench_rows = bench.query(
            "SELECT source_message_id, created_at FROM message WHERE source_message_id LIKE 'm_steady_%'"
        )
        order = [row[0] for row in rows]
        ours.send(("expect", order[-1] if order else 0, DELIVERY_TIMEOUT_S))
        say(f"{len(order)} outbox events; waiting for every client to read the last one")
        received = ours.recv()
        web_cpu = web.cpu_seconds() - web_cpu
        readers.join(timeout=30)
        slow = metric(httpx.get(f"{web.url}/metrics", timeout=10).text, "airy_event_stream_slow_disconnects_total")

    written_ms = {row[0]: row[1] for row in rows}
    answered = dict(result.answered_at_ms)
    accepted_ms = {  # a request sent as the load's time ended has no answer time: left out
        row[0]: answered[number]
        for row in rows
        if row[2]
        and row[2].startswith("m_steady_")
        and (number := int(row[2].rsplit("_", 1)[1]) // EVENTS_PER_REQUEST) in answered
    }
    committed_ms = probes.committed_ms
    complete = in_order = 0
    from_written: Counter[int] = Counter()  # delay in ms -> client-event pairs: 200 clients x 20,000 events
    from_accepted: Counter[int] = Counter()
    from_committed: Counter[int] = Counter()
    expected = set(order)
    for id_text, raw_reads in received:
        ids, times = array("q", map(int, id_text.split())), array("q")
        reads = array("q", raw_reads)
        for index in range(0, len(reads), 2):
            times.extend([reads[index + 1]] * reads[index])
        complete += set(ids) == expected
        in_order += ids.tolist() == order
        for event_id, at in zip(ids, times, strict=True):
            from_written[at - written_ms[event_id]] += 1
            if event_id in accepted_ms:
                from_accepted[at - accepted_ms[event_id]] += 1
            elif event_id in committed_ms:
                from_committed[at - committed_ms[event_id]] += 1
    p99 = quantile(from_written, 0.99)
    rows_out = [
        ("machine", machine()),
        ("clients", f"{args.clients} connected; {len(received)} reported; {slow:.0f} disconnected as slow"),
        (
            "load",
            f"{expected_messages} messages in {args.seconds:.0f} s ({steady.count} requests of 10), 8 connections",
        ),
        ("events", f"{len(order)} outbox events, {len(committed_ms)} of them probes"),
        ("every event, in order, once", f"{in_order} of {args.clients} clients ({complete} got every event)"),
        ("delay written -> received", spread(from_written)),
        ("delay webhook 200 -> received", spread(from_accepted)),
        ("delay probe commit -> received", spread(from_committed) + f"; {len(committed_ms)} probes, the stream alone"),
        ("ingestion lag (200 -> stored)", spread(ingestion_lags(bench_rows, answered))),
        (
            "CPU",
            f"web {web_cpu:.1f} s ({web_cpu / max(1, len(order)) * 1e3:.2f} ms per event, webhook and stream),"
            f" worker {worker_cpu:.1f} s, PostgreSQL {postgres_cpu:.1f} s",
        ),
        ("goal every client every event", "met" if in_order == args.clients else "NOT met"),
        ("goal p99 under 500 ms", "met" if p99 < 500 else "NOT met"),
    ]
    print()
    for label, value in rows_out:
        print(f"{label:32s}{value}")
    return 0


class Probes:
    """Events written straight into the outbox in transactions of their own, every ``interval_s``, each with
    the wall-clock time its commit returned: their delay to the clients is the stream's alone."""

    def __init__(self, bench: Bench, interval_s: float) -> None:
        self.connection = bench.connect()
        self.interval_s = interval_s
        self.committed_ms: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.connection.close()

    def _run(self) -> None:
        with self.connection.cursor() as cursor:
            while not self._stop.wait(self.interval_s):
                cursor.execute(
                    "INSERT INTO outbox_event (type, ordering_key, payload, timestamp, tx) VALUES"
                    " ('channel.updated', 'probe', '{}', %s, pg_current_xact_id()::text::bigint) RETURNING id",
                    (int(time.time() * 1000),),
                )
                event_id = cursor.fetchone()[0]  # autocommit: committed when execute returned
                self.committed_ms[event_id] = int(time.time() * 1000)


def ingestion_lags(rows: list[tuple], answered: dict[int, int]) -> Counter[int]:
    """Webhook 200 to message stored (its created_at), as bench/ingestion.py measures it."""
    numbers = ((int(mid.rsplit("_", 1)[1]) // EVENTS_PER_REQUEST, created_at) for mid, created_at in rows)
    return Counter(created_at - answered[number] for number, created_at in numbers if number in answered)


def stored(bench: Bench, tag: str) -> int:
    return bench.query("SELECT count(*) FROM message WHERE source_message_id LIKE %s", (f"m_{tag}_%",))[0][0]


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def quantile(histogram: Counter[int], q: float) -> float:
    """The ``q`` quantile (nearest rank) of the values counted in ``histogram``."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank, seen = max(1, round(q * total)), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def spread(histogram: Counter[int]) -> str:
    if not histogram:
        return "n/a"
    return (
        f"p50 {quantile(histogram, 0.5):.0f} ms, p99 {quantile(histogram, 0.99):.0f} ms, max {max(histogram)} ms"
        f" ({sum(histogram.values())} client-event pairs)"
    )


# --- the clients, in a process of their own -----------------------------------------------------------


def run_clients(port: int, count: int, pipe: Connection) -> None:
    """Connects ``count`` clients; when told which id is the last, waits for every client to read it and
    sends back, per client, the ids read and the wall-clock ms of each read."""
    asyncio.run(_clients(port, count, pipe))


class Reader:
    """One stream client: the ids it read, in arrival order, and when (wall-clock ms) each read completed them."""

    def __init__(self) -> None:
        self.id_text = bytearray()  # the ids read, space-separated
        self.reads = array("q")  # per read that completed ids: how many, and the wall-clock ms
        self.ended = False
        self.newest = 0

    async def run(self, port: int, connected: asyncio.Event, counter: list[int], total: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(b"GET /events.stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"the stream answered {head[:200]!r}")
        counter[0] += 1
        if counter[0] == total:
            connected.set()
        carry = b""
        try:
            while data := await reader.read(1 << 18):
                now = time.time_ns() // 1_000_000
                text = carry + data
                cut = text.rfind(b"\n")
                if cut < 0:
                    carry = text
                    continue
                found = ID_LINE.findall(text, 0, cut + 1)  # the per-id work in C: 200 clients read 200,000 ids/s
                if found:
                    self.id_text += b" ".join(found) + b" "
                    self.reads.append(len(found))
                    self.reads.append(now)
                    self.newest = int(found[-1])
                carry = text[cut:]
        finally:
            self.ended = True
            writer.close()


async def _clients(port: int, count: int, pipe: Connection) -> None:
    connected = asyncio.Event()
    counter = [0]
    readers = [Reader() for _ in range(count)]
    tasks = [asyncio.create_task(reader.run(port, connected, counter, count)) for reader in readers]
    await asyncio.wait_for(connected.wait(), 60)
    pipe.send("connected")
    loop = asyncio.get_running_loop()
    _, last_id, timeout_s = await loop.run_in_executor(None, pipe.recv)
    deadline = loop.time() + timeout_s
    while loop.time() < deadline and not all(r.ended or r.newest == last_id for r in readers):
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    pipe.send([(bytes(reader.id_text), reader.reads.tobytes()) for reader in readers])


if __name__ == "__main__":
    sys.exit(main())
