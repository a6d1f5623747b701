"""The ``airy-actors`` command: ``serve`` (all in one), ``web`` and ``worker`` (the Procfile's processes).

The one place that knows all three layers: the domain (``airy_actors``), the actors (``workers``, run by
``dramatiq workers.boot``) and the front (``api``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from airy_actors import metric_files
from airy_actors.config import Settings, use_settings
from airy_actors.errors import ConfigError
from airy_actors.logs import configure_logging
from airy_actors.processes import die_with_parent, signal_tree
from airy_actors.runtime import prepare_process
from api.http_server import server_options
from cli.embedded_redis import EmbeddedRedis
from cli.supervision import WorkerSupervisor
from workers.queues import ALL as ALL_QUEUES
from workers.queues import WAITING_ON_OTHERS, parse_queues

logger = logging.getLogger("cli.commands")

WORKER_STOP_TIMEOUT_S = 30
WAITING_THREADS = 8  # serve: the threads of the queues that wait on others (media, integrator deliveries)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airy-actors", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="the API and a worker together (a first run)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--processes", type=int, default=1, help="worker processes")
    serve.add_argument("--threads", type=int, default=16, help="threads per worker process")
    web = commands.add_parser("web", help="the API under uvicorn, on $PORT")
    web.add_argument("--host", default="0.0.0.0")
    web.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    web.add_argument("--workers", type=int, default=1, help="web processes sharing the port")
    worker = commands.add_parser("worker", help="Dramatiq worker processes; run more to scale")
    worker.add_argument("--processes", type=int, default=2)
    worker.add_argument("--threads", type=int, default=12)
    worker.add_argument(
        "--queues",
        type=_queue_list,
        default=None,
        metavar="Q1,Q2",
        help=f"consume only these queues (default: all of {','.join(ALL_QUEUES)})",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = Settings.from_environ()
        metric_files.prepare(settings, args.command)  # before anything imports prometheus_client
        if args.command == "serve":
            return run_serve(settings, args.host, args.port, args.processes, args.threads)
        if args.command == "web":
            return run_web(settings, args.host, args.port, args.workers)
        return run_worker(settings, args.processes, args.threads, args.queues)
    except ConfigError as error:
        print(f"airy-actors: configuration error: {error.message}", file=sys.stderr)
        return 2


def _queue_list(text: str) -> tuple[str, ...]:
    try:
        return parse_queues(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _with_redis(settings: Settings) -> tuple[Settings, EmbeddedRedis | None]:
    """Starts (or joins) the embedded Redis when REDIS_URL is unset, and tells child processes its URL."""
    if settings.redis_url is not None:
        return settings, None
    embedded = EmbeddedRedis(settings.data_dir)
    url = embedded.ensure_running()
    os.environ["REDIS_URL"] = url
    return dataclasses.replace(settings, redis_url=url), embedded


def _prepare(settings: Settings) -> None:
    use_settings(settings)
    prepare_process(log=False)
    settings.log_warnings()


def uvicorn_options() -> dict[str, object]:
    """How the API is served, apart from host and port: the server's own protections (api/http_server.py).

    bench/webhook_acceptance.py serves its ceiling so too.
    """
    return server_options()


def _uvicorn(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    # Imported only now, and not to dodge a cycle: importing the app declares the actors, which binds them to a
    # broker built from the settings, and the settings know the embedded Redis only once it has started.
    import uvicorn

    from api.app import create_app

    logger.info("serving the API", extra={"host": host, "port": port, "workers": workers})
    # uvicorn re-raises the signal that stopped it once it has shut down, under the handler that was in place
    # before it started: make that one ours, so that the caller's clean-up (workers, Redis) still runs.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stopping)
    if workers > 1:
        # uvicorn's supervisor forks nothing itself: each worker imports the app and prepares its process.
        uvicorn.run(
            "api.app:app_from_environment", factory=True, workers=workers, host=host, port=port, **uvicorn_options()
        )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options())


def _stopping(signum: int, frame: object) -> None:
    logger.info("stopping", extra={"signal": signal.Signals(signum).name})


def run_serve(settings: Settings, host: str, port: int, processes: int, threads: int) -> int:
    """Runs the API in this process and Dramatiq workers of every queue as children, restarted when they die;
    stops them all, and Redis, together.

    The queues that wait on others (media downloads, integrator deliveries) get a worker process of their own,
    so that a stalled receiver or a slow CDN never holds the threads of ingestion and sending.
    """
    settings, embedded = _with_redis(settings)
    if settings.public_url is None:  # the workers hand out media URLs of this web
        os.environ["AIRY_PUBLIC_URL"] = f"http://{host}:{port}"
    supervisors: list[WorkerSupervisor] = []
    own = tuple(queue for queue in ALL_QUEUES if queue not in WAITING_ON_OTHERS)
    try:
        _prepare(settings)
        supervisors.append(WorkerSupervisor(lambda: _spawn_worker(processes, threads, own), _stop).start())
        supervisors.append(
            WorkerSupervisor(lambda: _spawn_worker(1, WAITING_THREADS, WAITING_ON_OTHERS), _stop).start()
        )
        _uvicorn(settings, host, port)
    finally:
        for supervisor in supervisors:
            supervisor.stop()
        if embedded is not None:
            embedded.stop()
    return 0


def run_web(settings: Settings, host: str, port: int, workers: int = 1) -> int:
    settings, embedded = _with_redis(settings)
    try:
        _prepare(settings)
        _uvicorn(settings, host, port, workers)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def run_worker(settings: Settings, processes: int, threads: int, queues: Sequence[str] | None = None) -> int:
    """Runs Dramatiq's worker processes (of ``queues``, or of every queue) until a signal stops them.

    Returns:
      0 once stopped by SIGTERM or SIGINT; non-zero when the workers died on their own (Dramatiq stops them all
      when one of its worker processes dies), so that the process supervisor restarts this command.
    """
    settings, embedded = _with_redis(settings)
    _prepare(settings)  # fail here, clearly, rather than in every forked worker
    worker = _spawn_worker(processes, threads, queues)
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        code = worker.wait()
    finally:
        _stop(worker)
        if embedded is not None:
            embedded.stop()
    if stopping:
        return 0
    logger.error(
        f"the workers exited unexpectedly (code {code}); exiting so that the process supervisor restarts them",
        extra={"code": code},
    )
    return code if code > 0 else 1


def _spawn_worker(processes: int, threads: int, queues: Sequence[str] | None = None) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.boot",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--skip-logging",
        "--worker-shutdown-timeout",
        "20000",
    ]
    if queues:
        command += ["--queues", *queues]
    logger.info(
        "starting workers", extra={"processes": processes, "threads": threads, "queues": list(queues or ["all"])}
    )
    return subprocess.Popen(command, env=os.environ.copy(), preexec_fn=die_with_parent)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("workers did not stop in time; killing them")
            signal_tree(process.pid, signal.SIGKILL)
            process.wait(timeout=WORKER_STOP_TIMEOUT_S)
    logger.info("workers stopped")


if __name__ == "__main__":
    sys.exit(main())
