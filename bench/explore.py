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
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import free_port, procfile_command, say  # noqa: E402

from airy_actors.graph import GraphClient  # noqa: E402
from tests.fake_graph import FakeGraph  # noqa: E402

USER_TOKEN = "EAA-bench-user-token"
WARM_UP_TOKEN = "EAA-bench-warm-up-token"
START_TIMEOUT_S = 60
EXPLORE_TIMEOUT_S = 120


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


class Database:
    """A PostgreSQL database of the benchmark's own, created and dropped."""

    def __init__(self, admin_url: str) -> None:
        self.admin = urlparse(admin_url)
        self.name = f"airy_bench_{secrets.token_hex(4)}"
        netloc = self.admin.netloc
        self.url = f"postgresql://{netloc}/{self.name}"

    def _execute(self, sql: str) -> None:
        connection = psycopg2.connect(
            dbname=self.admin.path.lstrip("/"),
            user=self.admin.username,
            password=self.admin.password,
            host=self.admin.hostname,
            port=self.admin.port or 5432,
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    def create(self) -> None:
        self._execute(f"CREATE DATABASE {self.name}")

    def drop(self) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class Service:
    """``airy-actors web`` and ``airy-actors worker`` as subprocesses, each in a session of its own."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._spawn("worker", procfile_command("worker"))
        self._spawn("web", [*procfile_command("web"), "--host", "127.0.0.1", "--port", str(self.port)])
        wait_for(self._healthy, START_TIMEOUT_S, "the web to answer /health")

    def _spawn(self, name: str, command: list[str]) -> None:
        say(f"starting {' '.join(Path(command[0]).name if i == 0 else w for i, w in enumerate(command))}")
        with open(self.log_dir / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _healthy(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in time; killing it")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


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

    redis_url = os.environ.get("AIRY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    database = Database(os.environ.get("AIRY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    namespace = f"airy-bench-{secrets.token_hex(4)}"
    fake = FakeGraph().start()
    service: Service | None = None
    database_created = False
    with tempfile.TemporaryDirectory(prefix="airy-bench-") as log_dir:
        try:
            say(f"fake Graph API on {fake.url}: {args.pages} pages, {args.latency_ms} ms a call")
            page_ids = [str(10**14 + number) for number in range(args.pages)]
            for page_id in page_ids:
                fake.add_page(page_id, f"Page {page_id}", f"EAA-bench-page-token-{page_id}")
            fake.add_user(USER_TOKEN, page_ids)
            fake.add_page("999", "Warm-up page", "EAA-bench-warm-up-page")
            fake.add_user(WARM_UP_TOKEN, ["999"])
            fake.latency_ms = args.latency_ms

            say(f"creating PostgreSQL database {database.name}")
            database.create()
            database_created = True
            env = {
                **os.environ,
                "REDIS_URL": redis_url,
                "AIRY_BROKER_NAMESPACE": namespace,
                "DATABASE_URL": database.url,
                "FACEBOOK_APP_ID": "1517776481860111",
                "FACEBOOK_APP_SECRET": "bench-app-secret",
                "FACEBOOK_WEBHOOK_SECRET": "bench-verify-token",
                "FACEBOOK_GRAPH_URL": fake.url,
                "AIRY_SYNC_TIMEOUT_MS": "60000",
                "AIRY_LOG_LEVEL": "WARNING",
            }
            env.pop("AIRY_SYSTEM_TOKEN", None)
            service = Service(env, Path(log_dir))
            service.start()
            say(f"service up on {service.url} (broker namespace {namespace})")

            with httpx.Client(base_url=service.url, timeout=EXPLORE_TIMEOUT_S) as client:
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
            print(
                f"explore, median of {args.runs}     {median:.3f} s  (min {min(timings):.3f}, max {max(timings):.3f})"
            )
            print(f"floor: paging alone       {floor:.3f} s")
            print(f"ratio explore / floor     {median / floor:.2f}")
            print(f"one call after another    ~{sequential:.1f} s (estimate: {calls + args.pages} calls x latency)")
            print(f"goal                      under 5 s: {'met' if median < 5 else 'NOT met'}")
            return 0
        except BaseException:
            if service is not None:
                for name in service.processes:
                    say(f"{name} log tail:\n{service.log_tail(name)}")
            raise
        finally:
            say("cleaning up")
            if service is not None:
                service.stop()
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            if keys:
                client.delete(*keys)
            if database_created:
                database.drop()
            fake.stop()


if __name__ == "__main__":
    sys.exit(main())
