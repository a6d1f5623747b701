"""What the benchmarks share: a fresh PostgreSQL database, a broker namespace, the fake Graph API, the
Procfile's processes as subprocesses, and a load generator for signed webhook requests.

Use from a script in ``bench/`` (run from the repository root as ``python bench/<name>.py``)::

    from _harness import Bench, say

    with Bench("ingestion") as bench:          # database, namespace, fake Graph, env; all removed at the end
        web = bench.start_web()                # `airy-actors web` on a free port, waits for /health
        worker = bench.start_worker()          # the Procfile's `airy-actors worker`, booted
        channel_id = bench.create_channel("1001")
        ...                                    # bench.connect() gives a psycopg2 connection to the database

Environment: ``AIRY_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), ``AIRY_BENCH_POSTGRES_URL``
(an existing database to connect to for CREATE DATABASE; default ``postgresql://postgres@127.0.0.1:5432/test``).

``python bench/_harness.py bare-endpoint --port N [--workers W]`` serves the ceiling of
``bench/webhook_acceptance.py``: a Starlette endpoint that reads the body and answers 200, under uvicorn with
the same options and as many processes as the Procfile's ``airy-actors web``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airy_actors.processes import descendants, signal_tree  # noqa: E402

APP_ID = "1517776481860111"
APP_SECRET = "bench-app-secret"
AIRY = str(Path(sys.executable).parent / "airy-actors")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


def say(text: str) -> None:
    """A progress line, timestamped, flushed at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def procfile_command(process: str) -> list[str]:
    """The Procfile's command of ``process``, with ``airy-actors`` resolved in this interpreter's venv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            words = shlex.split(command)
            return [AIRY if words[0] == "airy-actors" else words[0], *words[1:]]
    raise SystemExit(f"the Procfile has no {process} process")


def int_option(command: list[str], option: str, default: int) -> int:
    """The value of ``option`` (``--processes`` ...) in ``command``, or ``default`` when it is not given."""
    return int(command[command.index(option) + 1]) if option in command else default


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Polls ``predicate`` until truthy; stops the benchmark after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """The ``X-Hub-Signature-256`` value Facebook sends with ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- PostgreSQL ---------------------------------------------------------------------------------------


class Database:
    """A PostgreSQL database of the benchmark's own, created and dropped."""

    def __init__(self, admin_url: str) -> None:
        self.admin = urlparse(admin_url)
        self.name = f"airy_bench_{secrets.token_hex(4)}"
        self.url = f"postgresql://{self.admin.netloc}/{self.name}"

    def connect(self, name: str | None = None):  # type: ignore[no-untyped-def]
        """A psycopg2 connection to this database (or to ``name``), in autocommit mode."""
        import psycopg2

        connection = psycopg2.connect(
            dbname=name or self.name,
            user=self.admin.username,
            password=self.admin.password,
            host=self.admin.hostname,
            port=self.admin.port or 5432,
        )
        connection.autocommit = True
        return connection

    def _admin(self, sql: str) -> None:
        connection = self.connect(self.admin.path.lstrip("/"))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    def create(self) -> None:
        self._admin(f"CREATE DATABASE {self.name}")

    def drop(self) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


# --- processes ----------------------------------------------------------------------------------------


class Process:
    """One subprocess in a session of its own, logging to ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.log_path = log_dir / f"{name}.log"
        shown = " ".join(Path(word).name if index == 0 else word for index, word in enumerate(command))
        say(f"starting {name}: {shown}")
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def members(self) -> list[int]:
        """The pids of the process and of all its descendants."""
        return descendants(self.pid)

    def rss_mb(self) -> dict[int, float]:
        """Resident memory of each member process, in MiB (VmRSS)."""
        sizes = {}
        for pid in self.members():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return sizes

    def cpu_seconds(self) -> float:
        """User plus system CPU time of every member process so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.members():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
            except OSError:
                pass
        return total

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to every process group of the tree; SIGKILL what is left after the timeout."""
        members = signal_tree(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop in time; killing it")
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)


class HttpProcess(Process):
    """A process serving HTTP on ``127.0.0.1:port``, ready once ``ready_path`` answers one of ``ready_statuses``."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_dir: Path,
        port: int,
        ready_path: str,
        ready_statuses: tuple[int, ...] = (200,),
    ) -> None:
        self.port = port
        self.ready_statuses = ready_statuses
        super().__init__(name, command, env, log_dir)
        wait_for(lambda: self._answers(ready_path), START_TIMEOUT_S, f"{name} to answer {ready_path}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self, path: str) -> bool:
        import httpx

        self.check_alive()
        try:
            return httpx.get(f"{self.url}{path}", timeout=2).status_code in self.ready_statuses
        except httpx.HTTPError:
            return False


class Worker(Process):
    """The Procfile's worker; ready once every worker process says so."""

    def __init__(self, command: list[str], env: dict[str, str], log_dir: Path, name: str = "worker") -> None:
        super().__init__(name, command, env, log_dir)
        expected = int_option(command, "--processes", 1)
        wait_for(lambda: self._ready() >= expected, START_TIMEOUT_S, "the worker processes to boot")

    def _ready(self) -> int:
        self.check_alive()
        return self.log_path.read_text(errors="replace").count("Worker process is ready for action")

    def worker_pids(self) -> list[int]:
        """The forked Dramatiq worker processes (the leaves of the tree)."""
        members = self.members()
        parents = set()
        for pid in members:
            try:
                parents.add(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]))
            except OSError:
                pass
        return [pid for pid in members if pid not in parents]


# --- the whole set-up ---------------------------------------------------------------------------------


class Bench:
    """A fresh database, a broker namespace, the fake Graph API and the processes; all removed on exit.

    Parameters:
      name: names the log directory (kept under ``bench/results/<name>-<time>/`` when ``keep_logs``).
      log_level: ``AIRY_LOG_LEVEL`` of the processes (production's default is INFO).
      keep_logs: keep the processes' logs after the run.
    """

    def __init__(self, name: str, *, log_level: str = "INFO", keep_logs: bool = False) -> None:
        self.name = name
        self.redis_url = os.environ.get("AIRY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        self.database = Database(os.environ.get("AIRY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
        self.namespace = f"airy-bench-{secrets.token_hex(4)}"
        self.log_level = log_level
        self.keep_logs = keep_logs
        self.processes: list[Process] = []
        self.fake_graph = None
        self._created = False
        self._connection = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.log_dir = Path()
        self.env: dict[str, str] = {}

    def __enter__(self) -> Bench:
        from tests.fake_graph import FakeGraph

        if self.keep_logs:
            self.log_dir = ROOT / "bench" / "results" / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            self.log_dir.mkdir(parents=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"airy-bench-{self.name}-")
            self.log_dir = Path(self._tmp.name)
        self.fake_graph = FakeGraph().start()
        say(f"creating PostgreSQL database {self.database.name}; broker namespace {self.namespace}")
        self.database.create()
        self._created = True
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "AIRY_BROKER_NAMESPACE": self.namespace,
            "DATABASE_URL": self.database.url,
            "FACEBOOK_APP_ID": APP_ID,
            "FACEBOOK_APP_SECRET": APP_SECRET,
            "FACEBOOK_WEBHOOK_SECRET": "bench-verify-token",
            "FACEBOOK_GRAPH_URL": self.fake_graph.url,
            "AIRY_LOG_LEVEL": self.log_level,
            "AIRY_DATA_DIR": str(self.log_dir / "data"),  # the webhook's spool, the media folder
        }
        for name in ("AIRY_SYSTEM_TOKEN", "PORT"):
            self.env.pop(name, None)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            for process in self.processes:
                say(f"{process.name} log tail:\n{process.log_tail()}")
        say("cleaning up")
        self.stop_all()
        import redis

        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=f"{self.namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
        if self._connection is not None:
            self._connection.close()
        if self._created:
            self.database.drop()
        if self.fake_graph is not None:
            self.fake_graph.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
        elif self.keep_logs:
            say(f"logs kept in {self.log_dir}")

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def start_web(self, extra_env: dict[str, str] | None = None) -> HttpProcess:
        """The Procfile's web, on a free port of 127.0.0.1; returns once ``/health`` answers.

        503 counts: it means that no live worker serves some queue, and a benchmark may start the web first.
        """
        port = free_port()
        command = [*procfile_command("web"), "--host", "127.0.0.1", "--port", str(port)]
        env = {**self.env, **(extra_env or {})}
        web = HttpProcess("web", command, env, self.log_dir, port, "/health", ready_statuses=(200, 503))
        self.processes.append(web)
        return web

    def start_worker(self, extra_env: dict[str, str] | None = None, *, process: str = "worker") -> Worker:
        """The Procfile's ``process`` (a worker line: ``worker``, ``media``, ``deliveries``), once booted."""
        worker = Worker(procfile_command(process), {**self.env, **(extra_env or {})}, self.log_dir, process)
        self.processes.append(worker)
        return worker

    def start_bare_endpoint(self) -> HttpProcess:
        """The ceiling: a bare Starlette endpoint under uvicorn, options as ``airy-actors web``."""
        port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "bare-endpoint", "--port", str(port)]
        command += ["--workers", str(web_workers())]  # the web's processes, as the Procfile runs it
        bare = HttpProcess("bare-endpoint", command, self.env, self.log_dir, port, "/health")
        self.processes.append(bare)
        return bare

    def postgres_cpu_seconds(self) -> float:
        """CPU time used so far by the PostgreSQL backends serving the benchmark's database.

        Backends are processes titled ``postgres: ... <database> ...``; those that exited meanwhile are not
        counted, nor are PostgreSQL's shared background processes (WAL writer, checkpointer).
        """
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
                if not title.startswith("postgres:") or f" {self.database.name} " not in title:
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
            except OSError:
                continue
        return total

    def connect(self):  # type: ignore[no-untyped-def]
        """A new psycopg2 connection to the benchmark's database (autocommit); the caller closes it."""
        return self.database.connect()

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """The rows of ``sql``, over one connection kept for the whole run (polling opens no new ones)."""
        if self._connection is None:
            self._connection = self.connect()
        with self._connection.cursor() as cursor:
            cursor.execute(sql, params or None)  # no parameters: a % in the SQL is literal
            return cursor.fetchall()

    def create_channel(self, page_id: str, token: str = "EAA-bench-page-token") -> str:
        """A connected Facebook channel for ``page_id``, stored directly (the schema must exist). Returns its id."""
        channel_id = f"00000000-0000-4000-8000-{int(page_id):012d}"
        self._insert_channel(channel_id, "facebook", page_id, page_id, token)
        self.fake_graph.add_page(page_id, "Bench", token)
        return channel_id

    def create_instagram_channel(self, page_id: str, account_id: str, token: str = "EAA-bench-page-token") -> str:
        """A connected Instagram channel for ``account_id``, linked to ``page_id`` (a page :meth:`create_channel`
        made, or one this adds), stored directly. Returns its id."""
        channel_id = f"00000000-0000-4000-8001-{int(account_id) % 10**12:012d}"
        self._insert_channel(channel_id, "instagram", account_id, page_id, token)
        self.fake_graph.add_page(page_id, "Bench", token)
        self.fake_graph.add_instagram_account(page_id, account_id, "bench.shop")
        return channel_id

    def _insert_channel(self, channel_id: str, source: str, source_channel_id: str, page_id: str, token: str) -> None:
        now = int(time.time() * 1000)
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO channel (id, source, source_channel_id, page_id, name, page_token, connected,"
                    " webhook_subscribed, token_valid, created_at, updated_at)"
                    " VALUES (%s, %s, %s, %s, 'Bench', %s, true, true, true, %s, %s)",
                    (channel_id, source, source_channel_id, page_id, token, now, now),
                )
        finally:
            connection.close()


# --- webhook requests and the load generator ----------------------------------------------------------


class WebhookBatches:
    """Signed ``POST /facebook`` requests, each a batch of text messages with mids never used before.

    Parameters:
      page_id: the entry the events are addressed to: a page id, or for Instagram an account id.
      events_per_batch: events in each request.
      contacts: how many different contacts write (PSIDs, or IGSIDs, are drawn round-robin).
      tag: keeps the mids of one run apart from another's.
      platform: ``"facebook"`` (Messenger bodies, ``"object": "page"``) or ``"instagram"`` (``"object":
        "instagram"``, with Instagram-scoped contact ids of their own, from :data:`INSTAGRAM_CONTACTS`).
    """

    def __init__(
        self,
        page_id: str,
        *,
        events_per_batch: int = 10,
        contacts: int = 1000,
        tag: str = "",
        platform: str = "facebook",
    ) -> None:
        self.page_id = page_id
        self.events_per_batch = events_per_batch
        self.contacts = contacts
        self.tag = tag or secrets.token_hex(3)
        self.count = 0
        self.object = "instagram" if platform == "instagram" else "page"
        self.first_contact = INSTAGRAM_CONTACTS if platform == "instagram" else MESSENGER_CONTACTS

    def contact(self, number: int) -> str:
        """The id of the ``number``-th contact writing."""
        return str(self.first_contact + number % self.contacts)

    def body(self, number: int, *, timestamp_ms: int | None = None) -> bytes:
        timestamp = timestamp_ms or int(time.time() * 1000)
        events = []
        for index in range(self.events_per_batch):
            serial = number * self.events_per_batch + index
            events.append(
                {
                    "sender": {"id": self.contact(serial)},
                    "recipient": {"id": self.page_id},
                    "timestamp": timestamp,
                    "message": {"mid": f"m_{self.tag}_{serial}", "text": f"Hello, this is message {serial}"},
                }
            )
        document = {"object": self.object, "entry": [{"id": self.page_id, "time": timestamp, "messaging": events}]}
        return json.dumps(document, separators=(",", ":")).encode()

    def next_request(self, *, timestamp_ms: int | None = None) -> bytes:
        """The raw HTTP/1.1 request of the next batch."""
        body = self.body(self.count, timestamp_ms=timestamp_ms)
        self.count += 1
        return raw_post("/facebook", body, {"X-Hub-Signature-256": sign(body), "Content-Type": "application/json"})


MESSENGER_CONTACTS = 7_000_000_000  # the first PSID of the contacts writing
INSTAGRAM_CONTACTS = 8_000_000_000  # the first IGSID


def raw_post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    """What a load run saw: answers by status, latencies of the answered requests, and the wall time."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    answered_at_ms: list[tuple[int, int]] = field(default_factory=list)  # (request number, wall clock ms)
    elapsed_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"transfer-encoding":
            raise RuntimeError("chunked answers are not expected")
    if length:
        await reader.readexactly(length)
    return status


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


ANSWER_TIMEOUT_S = 30.0  # a request still unanswered after this stops the benchmark, instead of hanging it


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    number: int,
    raw: bytes,
    result: LoadResult,
    measuring: Callable[[], bool],
) -> None:
    measured = measuring()  # a request counts in the window in which it was sent
    started = time.perf_counter()
    writer.write(raw)
    try:
        status = await asyncio.wait_for(_read_response(reader), ANSWER_TIMEOUT_S)
    except TimeoutError:
        stalled = f"request {number} had no answer within {ANSWER_TIMEOUT_S:.0f} s: the server stalled"
        raise SystemExit(stalled) from None
    if measured:
        result.statuses[status] += 1
        result.latencies_s.append(time.perf_counter() - started)
        if status == 200:
            result.answered_at_ms.append((number, int(time.time() * 1000)))


def run_load(
    port: int,
    make_request: Callable[[int], bytes],
    *,
    connections: int,
    duration_s: float | None = None,
    limit: int | None = None,
    warm_up_s: float = 0.0,
    rate: float | None = None,
    progress: bool = True,
) -> LoadResult:
    """Sends requests over ``connections`` keep-alive connections, for a time or a number of requests.

    Parameters:
      port: the server's port on 127.0.0.1.
      make_request: the raw request number ``n`` (each is made once, just before it is due).
      connections: requests in flight at most.
      duration_s: the measured time, after the warm-up (None: until ``limit`` requests are answered).
      limit: how many requests to send at most (None: as many as fit in the time).
      warm_up_s: time under the same load that is not measured.
      rate: requests started per second (an open loop: request ``n`` is due at ``n / rate``, and waits for
        a free connection when all are busy); None sends each request as soon as the previous answer on its
        connection came (a closed loop, as fast as the server goes).

    Returns:
      What was answered during the measured time.
    """
    if duration_s is None and limit is None:
        raise ValueError("give a duration, a limit, or both")
    result = LoadResult()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        measure_from = start + warm_up_s
        stop_at = measure_from + duration_s if duration_s is not None else float("inf")
        due: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=connections)
        connected = [await _open(port) for _ in range(connections)]

        def measuring() -> bool:
            return measure_from <= loop.time() <= stop_at

        async def schedule() -> None:
            number = 0
            while (limit is None or number < limit) and (start + number / rate if rate else loop.time()) < stop_at:
                if rate:
                    await asyncio.sleep(max(0.0, start + number / rate - loop.time()))
                await due.put((number, make_request(number)))
                number += 1
            for _ in range(connections):
                await due.put(None)

        async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while (item := await due.get()) is not None:
                    await _exchange(reader, writer, *item, result, measuring)
            finally:
                writer.close()

        async def report() -> None:
            last = 0
            while True:
                await asyncio.sleep(1.0)
                if loop.time() > measure_from:
                    say(f"  {result.ok - last:6d} answered 200 in the last second")
                    last = result.ok

        reporter = asyncio.create_task(report()) if progress else None
        await asyncio.gather(schedule(), *(send(*pair) for pair in connected))
        if reporter is not None:
            reporter.cancel()
        result.elapsed_s = duration_s if duration_s is not None else loop.time() - measure_from

    asyncio.run(main())
    return result


def summary_ms(values_s: list[float]) -> str:
    if not values_s:
        return "n/a"
    return (
        f"p50 {percentile(values_s, 0.5) * 1000:.1f} ms, p99 {percentile(values_s, 0.99) * 1000:.1f} ms, "
        f"max {max(values_s) * 1000:.1f} ms, mean {statistics.fmean(values_s) * 1000:.1f} ms"
    )


def machine() -> str:
    """Cores, CPU model, Python, date and load: the first line of a benchmark's summary."""
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    load = open("/proc/loadavg").read().split()[:3]
    return (
        f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M')},"
        f" load average {' '.join(load)} (other processes share the cores)"
    )


# --- the bare endpoint (the ceiling of webhook_acceptance.py) ------------------------------------------


def bare_app():  # type: ignore[no-untyped-def]
    """``POST /facebook`` reads the body and answers 200 ``{"status": "received"}``; nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def receive(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "received"})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/facebook", receive, methods=["POST"]), Route("/health", health)])


def serve_bare_endpoint(port: int, workers: int) -> None:
    """Serves :func:`bare_app` with the options of cli.commands._uvicorn, so that only the endpoint differs."""
    import uvicorn

    from cli.commands import uvicorn_options

    if workers > 1:
        app_dir = str(Path(__file__).resolve().parent)
        uvicorn.run(
            "_harness:bare_app",
            factory=True,
            workers=workers,
            app_dir=app_dir,
            host="127.0.0.1",
            port=port,
            **uvicorn_options(),
        )
    else:
        uvicorn.run(bare_app(), host="127.0.0.1", port=port, **uvicorn_options())


def web_workers() -> int:
    """The ``--workers`` of the Procfile's web (1 when it gives none)."""
    return int_option(procfile_command("web"), "--workers", 1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="benchmark helpers")
    commands = parser.add_subparsers(dest="command", required=True)
    bare = commands.add_parser("bare-endpoint")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    serve_bare_endpoint(arguments.port, arguments.workers)
