"""Benchmark of sending: messages delivered through ``POST /messages.send`` and the Send API, a second.

Run by hand from the repository root::

    python bench/send.py [--messages 5000] [--pages 4] [--latency-ms 100] [--connections 32]

The production shape as subprocesses: the Procfile's ``airy-actors web`` and ``airy-actors worker`` (with
the Procfile's settings unless ``--processes``/``--threads`` say otherwise), a fresh PostgreSQL database, the
local Redis under a broker namespace of its own, and the fake Graph API answering every Send API call after
``--latency-ms``. Channels and conversations whose contacts wrote a minute ago are stored directly. Then
``--messages`` answers are POSTed over ``--connections`` keep-alive connections, round-robin over the
conversations of ``--pages`` pages.

Reported: the delivered rate, from the first POST to the last message ``delivered`` (its ``updated_at``),
against two baselines measured in the same run: the ideal rate of the worker (the Send API calls it can have
in flight / the latency) and the fake's own maximum rate with a trivial client as concurrent as the worker (at
most 64 connections); and the CPU each process
spent, in seconds and per message: the web, the worker, this script (client and fake), the PostgreSQL
backends of the benchmark's database, and Redis (the whole server: other users of a shared Redis count too).
The machine's load average is printed first and last: other processes share the cores.

Goal: at least 300 delivered messages a second. A page is throttled to 250 sends a second (below Facebook's
300), so the default spreads the load over 4 pages; ``--pages 1`` shows the throttle instead. It checks that
Facebook got every message exactly once and that none failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from collections import Counter

import redis
from _harness import Bench, Worker, int_option, machine, procfile_command, raw_post, say, wait_for

from airy_actors.conversations import ensure_conversation
from airy_actors.db import database, open_database
from airy_actors.graph import GraphClient
from airy_actors.models import Channel, Conversation
from airy_actors.sending import MAX_BATCH, SEND_THREADS

CONVERSATIONS_PER_PAGE = 50
MAX_BASELINE_CONNECTIONS = 64  # past that, the fake's own CPU bounds its rate


def worker_command(processes: int | None, threads: int | None) -> list[str]:
    """The Procfile's worker command, with ``--processes`` and ``--threads`` replaced when given."""
    command = procfile_command("worker")
    for option, value in (("--processes", processes), ("--threads", threads)):
        if value is None:
            continue
        if option in command:
            command[command.index(option) + 1] = str(value)
        else:
            command += [option, str(value)]
    return command


def concurrency_of(command: list[str]) -> int:
    """Send API calls the worker can have in flight: each thread delivers a batch of sends at once, each
    process at most its sending threads (airy-actors worker's defaults: 2 processes, 12 threads)."""
    processes, threads = int_option(command, "--processes", 2), int_option(command, "--threads", 12)
    return processes * min(threads * MAX_BATCH, SEND_THREADS)


def page_token(page: int) -> str:
    return f"EAA-bench-token-{page}"


def prepare_conversations(bench: Bench, pages: int) -> list[str]:
    """Channels at the fake and in the database, and conversations whose contact wrote a minute ago."""
    open_database(bench.database.url, max_connections=4)
    graph = GraphClient(bench.fake_graph.url)
    conversation_ids = []
    with database.connection_context():
        for page in range(pages):
            page_id = str(9_000_000 + page)
            channel_id = bench.create_channel(page_id, token=page_token(page))
            # As connecting would: subscribed at Facebook, so that the channel health check leaves it alone.
            graph.subscribe_app(page_id, page_token(page))
            channel = Channel.get_by_id(channel_id)
            for contact in range(CONVERSATIONS_PER_PAGE):
                ref = ensure_conversation(channel, f"{page_id}{contact:05d}")
                conversation_ids.append(ref.conversation.id)
        Conversation.update(last_contact_message_at=int(time.time() * 1000) - 60_000).execute()
    graph.close()
    return conversation_ids


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return int(head[9:12]), await reader.readexactly(length)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


def post_all(port: int, requests: list[bytes], connections: int) -> tuple[Counter[int], float]:
    """Sends every request over ``connections`` keep-alive connections. Returns statuses and the start (ms)."""
    statuses: Counter[int] = Counter()

    async def post() -> float:
        pending = list(reversed(requests))
        pairs = [await _connect(port) for _ in range(connections)]
        started_ms = time.time() * 1000

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while pending:
                status, _ = await _request(reader, writer, pending.pop())
                statuses[status] += 1
            writer.close()

        async def report() -> None:
            while True:
                await asyncio.sleep(1.0)
                say(f"  posted {sum(statuses.values())} of {len(requests)}")

        reporter = asyncio.create_task(report())
        await asyncio.gather(*(run(*pair) for pair in pairs))
        reporter.cancel()
        return started_ms

    started = asyncio.run(post())
    return statuses, started


def send_request(conversation_id: str, text: str) -> bytes:
    body = json.dumps({"conversation_id": conversation_id, "message": {"text": text}}).encode()
    return raw_post("/messages.send", body, {"Content-Type": "application/json"})


def fake_max_rate(bench: Bench, concurrency: int, seconds: float = 4.0) -> float:
    """Send API calls a second that the fake answers to a trivial client as concurrent as the worker."""
    port = int(bench.fake_graph.origin.rsplit(":", 1)[1])
    body = json.dumps({"recipient": {"id": "1"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}}).encode()
    path = f"/{bench.fake_graph.version}/me/messages?access_token={page_token(0)}"
    raw = raw_post(path, body, {"Content-Type": "application/json"})
    answered = 0

    async def call() -> None:
        nonlocal answered
        pairs = [await _connect(port) for _ in range(concurrency)]
        deadline = time.monotonic() + seconds

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal answered
            while time.monotonic() < deadline:
                status, _ = await _request(reader, writer, raw)
                answered += status == 200
            writer.close()

        await asyncio.gather(*(run(*pair) for pair in pairs))

    asyncio.run(call())
    return answered / seconds


def delivery_counts(connection) -> tuple[int, int, int, int | None]:  # type: ignore[no-untyped-def]
    """Outbound messages pending, delivered, failed, and when the last one was delivered (ms)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT delivery_state, count(*), max(updated_at) FROM message WHERE NOT from_contact"
            " GROUP BY delivery_state"
        )
        rows = {state: (count, last) for state, count, last in cursor.fetchall()}
    return (
        rows.get("pending", (0, None))[0],
        rows.get("delivered", (0, None))[0],
        rows.get("failed", (0, None))[0],
        rows.get("delivered", (0, None))[1],
    )


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy so far (every core, every process), from /proc/stat."""
    fields = [int(value) for value in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(url: str) -> float:
    """CPU time of the whole Redis server so far (``INFO cpu``), shared with whoever else uses it."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--pages", type=int, default=4, help="pages the messages are spread over (250/s each)")
    parser.add_argument("--latency-ms", type=int, default=100, help="how long the fake Send API takes to answer")
    parser.add_argument("--connections", type=int, default=32, help="concurrent POST /messages.send")
    parser.add_argument("--log-level", default="INFO", help="AIRY_LOG_LEVEL of the processes (production: INFO)")
    parser.add_argument("--processes", type=int, help="worker processes (default: the Procfile's)")
    parser.add_argument("--threads", type=int, help="threads per worker process (default: the Procfile's)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every delivery")
    args = parser.parse_args()

    command = worker_command(args.processes, args.threads)
    concurrency = concurrency_of(command)
    say(machine())
    with Bench("send", log_level=args.log_level) as bench:
        fake = bench.fake_graph
        fake.latency_ms = args.latency_ms
        web = bench.start_web()
        watch = bench.connect()  # one connection for the whole run: the server may have few to spare
        conversation_ids = prepare_conversations(bench, args.pages)
        say(f"{len(conversation_ids)} conversations on {args.pages} pages")
        connections = min(concurrency, MAX_BASELINE_CONNECTIONS)
        say(f"baseline: the fake's own rate with a trivial client of {connections} connections")
        ceiling = fake_max_rate(bench, connections)
        ideal = concurrency / (args.latency_ms / 1000)
        say(f"  {ceiling:.0f} calls/s (ideal for {concurrency} calls in flight at {args.latency_ms} ms: {ideal:.0f}/s)")
        worker = Worker(command, bench.env, bench.log_dir)
        bench.processes.append(worker)

        say("warming up: one message per page")
        warm = [send_request(conversation_ids[page * CONVERSATIONS_PER_PAGE], "warm") for page in range(args.pages)]
        post_all(web.port, warm, 1)
        wait_for(lambda: delivery_counts(watch)[1] == args.pages, 60, "the warm-up messages")
        sent_before = len(fake.sent_messages)

        requests = [
            send_request(conversation_ids[number % len(conversation_ids)], f"Answer number {number}")
            for number in range(args.messages)
        ]
        say(f"sending {args.messages} messages over {args.connections} connections")
        cpu_before = {
            "web": web.cpu_seconds(),
            "worker": worker.cpu_seconds(),
            "bench": time.process_time(),
            "postgres": bench.postgres_cpu_seconds(),
            "redis": redis_cpu_seconds(bench.redis_url),
            "machine": machine_busy_seconds(),
        }
        statuses, first_post_ms = post_all(web.port, requests, args.connections)
        posted_s = time.time() - first_post_ms / 1000
        say(f"  all posted in {posted_s:.1f} s ({args.messages / posted_s:.0f}/s); answers {dict(statuses)}")
        if statuses[200] != args.messages:
            raise SystemExit(f"answers other than 200: {dict(statuses)}")
        deadline = time.monotonic() + args.timeout
        while True:
            pending, delivered, failed, last_ms = delivery_counts(watch)
            say(f"  delivered {delivered - args.pages}, failed {failed}, pending {pending}")
            if pending == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{pending} messages still pending after {args.timeout:.0f} s")
            time.sleep(1.0)
        cpu = {
            "web": web.cpu_seconds() - cpu_before["web"],
            "worker": worker.cpu_seconds() - cpu_before["worker"],
            "bench (client and fake)": time.process_time() - cpu_before["bench"],
            "PostgreSQL": bench.postgres_cpu_seconds() - cpu_before["postgres"],
            "Redis": redis_cpu_seconds(bench.redis_url) - cpu_before["redis"],
        }
        machine_busy = machine_busy_seconds() - cpu_before["machine"]
        watch.close()

        sent = fake.sent_messages[sent_before:]
        markers = Counter(body["message"].get("metadata") for body in sent)
        duplicates = sum(count - 1 for count in markers.values())
        elapsed_s = (last_ms - first_post_ms) / 1000
        rate = args.messages / elapsed_s
        say("results")
        say(f"  delivered {delivered - args.pages}, failed {failed}; Send API calls {len(sent)}, dupes {duplicates}")
        say(f"  delivered rate: {rate:.0f} messages/s ({args.messages} in {elapsed_s:.1f} s, first POST to last one)")
        say(f"  baseline, {concurrency} calls / {args.latency_ms} ms: {ideal:.0f}/s -> ratio {rate / ideal:.2f}")
        say(f"  baseline, the fake's own max rate: {ceiling:.0f}/s -> ratio {rate / ceiling:.2f}")
        say("  CPU seconds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()))
        per_message = [f"{name} {seconds / args.messages * 1000:.2f}" for name, seconds in cpu.items()]
        per_message.append(f"total {sum(cpu.values()) / args.messages * 1000:.2f}")
        say("  CPU ms per message: " + ", ".join(per_message))
        elapsed_cpu_s = time.time() - first_post_ms / 1000
        say(
            f"  the machine was busy {machine_busy:.1f} CPU seconds of {elapsed_cpu_s * os.cpu_count():.1f} meanwhile;"
            f" other processes took {machine_busy - sum(cpu.values()):.1f}"
        )
        say(f"  goal: >= 300 messages/s: {'met' if rate >= 300 else 'NOT met'}")
        say(f"  worker: {' '.join(command[1:])}")
        say(machine())
        if failed or duplicates or len(sent) != args.messages:
            raise SystemExit("some messages failed, or were not sent exactly once")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
