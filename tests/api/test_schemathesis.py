"""Schemathesis against ``GET /openapi.json``: no server error and no answer that breaks the document.

The app is served over real HTTP on PostgreSQL and Redis, behind a system token, with a worker running the
jobs of the synchronous endpoints against the fake Graph API. Schemathesis' command line (``st run``, from
the test extra) reads the document, generates requests valid and invalid for every operation (a bounded
number of examples each), and checks every answer: not a 5xx, a status the document lists, the content type
it lists, and a body that validates against its schema. Any finding fails the test, with Schemathesis'
report (and a curl command to reproduce it) in the failure message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support import stored_conversation

TOKEN = "schemathesis-token"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Per operation and phase: about 40 operations, the whole run within a minute. AIRY_SCHEMATHESIS_EXAMPLES (and
# AIRY_SCHEMATHESIS_SEED) run a deeper or another search by hand.
MAX_EXAMPLES = int(os.environ.get("AIRY_SCHEMATHESIS_EXAMPLES", "8"))
SYNC_TIMEOUT_MS = 1_000  # a job that the worker has not ended by then is answered 202, as documented
RUN_TIMEOUT_S = 240 * max(1, MAX_EXAMPLES // 8)


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(serve_app, worker, tmp_path: Path):
    # Given a channel, a conversation and a message, so that some generated ids may be found
    stored_conversation("a0000000-0000-0000-0000-000000000001")
    with serve_app(system_token=TOKEN, sync_timeout_ms=SYNC_TIMEOUT_MS) as client:
        # When Schemathesis runs every operation of the document against it
        started = time.monotonic()
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                str(client.base_url.join("/openapi.json")),
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                CHECKS,
                # A stream never ends, so it has no answer to check: tests/integrations/test_event_stream.py
                "--exclude-path",
                "/events.stream",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--phases",
                "examples,coverage,fuzzing",
                "--workers",
                "2",
                "--request-timeout",
                "30",
                "--seed",
                os.environ.get("AIRY_SCHEMATHESIS_SEED", "16"),
                "--no-color",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
            cwd=tmp_path,
        )
        took = time.monotonic() - started

    # Then it finds nothing
    report = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert run.returncode == 0, f"schemathesis found problems (exit {run.returncode}, {took:.0f} s):\n{report}"
    assert "No issues found" in run.stdout or "passed" in run.stdout, report
