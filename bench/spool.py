"""Webhook acceptance while PostgreSQL is away (the spool) as a ratio of the normal path, in one run.

The Procfile's web reaches PostgreSQL through a TCP proxy (tests/faults/tcp_proxy.py). Each round measures
signed batches accepted a second for ``--seconds`` with the database there, then with the proxy cut (every
request fsync'd into the local spool and answered 200), then restores the database and waits until the spool
has drained: every request answered 200 must then be stored once. Goal: the spooled rate at least 0.8 of the
normal one.

Run alone (not beside the test suite): ``.venv/bin/python bench/spool.py [--connections 16] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import statistics

import httpx
from _harness import Bench, WebhookBatches, run_load, say, summary_ms, wait_for

from tests.faults.tcp_proxy import TcpProxy

PAGE_ID = "1001"


def rate(web_port: int, batches: WebhookBatches, connections: int, seconds: float, warm_up: float) -> float:
    result = run_load(
        web_port, lambda number: batches.next_request(), connections=connections, duration_s=seconds, warm_up_s=warm_up
    )
    others = {status: count for status, count in result.statuses.items() if status != 200}
    if others:
        raise SystemExit(f"answers other than 200: {others}")
    say(f"  {result.rate:.0f} requests/s; {summary_ms(result.latencies_s)}")
    return result.rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warm-up", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ratios = []
    with Bench("spool") as bench:
        admin = httpx.URL(bench.database.url)
        proxy = TcpProxy(admin.host or "127.0.0.1", admin.port or 5432).start()
        url = bench.database.url.replace(f"{admin.host}:{admin.port or 5432}", f"127.0.0.1:{proxy.port}", 1)
        web = bench.start_web({"DATABASE_URL": url})
        bench.create_channel(PAGE_ID)
        batches = WebhookBatches(PAGE_ID, events_per_batch=10, tag="spool")
        for number in range(args.rounds):
            say(f"round {number + 1}: database there")
            normal = rate(web.port, batches, args.connections, args.seconds, args.warm_up)
            proxy.cut()
            say(f"round {number + 1}: database away (spooling)")
            spooled = rate(web.port, batches, args.connections, args.seconds, args.warm_up)
            proxy.restore()
            wait_for(lambda: httpx.get(f"{web.url}/health", timeout=5).json()["spool"]["bytes"] == 0, 300,
                     "the spool to drain", interval_s=0.5)
            ratios.append(spooled / normal)
            say(f"round {number + 1}: spooled/normal = {spooled / normal:.2f}")
        stored = bench.query("SELECT count(*), count(DISTINCT digest) FROM webhook_event")[0]
        say(f"stored requests: {stored[0]} ({stored[1]} distinct); sent: {batches.count}")
        if stored[0] != batches.count or stored[1] != batches.count:
            raise SystemExit("a request answered 200 was lost or stored twice")
        proxy.stop()
    say(f"median ratio spooled/normal: {statistics.median(ratios):.2f} (goal >= 0.80)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
