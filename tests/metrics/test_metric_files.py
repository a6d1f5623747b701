"""The host's metric files: a directory per run, kept while it runs, removed once it ended and another starts."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airy_actors import metric_files
from airy_actors.config import Settings
from airy_actors.metric_files import RunDirectory, metrics_root, remove_ended_runs


def test_a_run_gets_an_empty_locked_directory_of_its_own(tmp_path):
    run = RunDirectory.claim(tmp_path, "web")
    assert run.path == tmp_path / f"web-{os.getpid()}"
    assert sorted(p.name for p in run.path.iterdir()) == [metric_files.OWNER_LOCK]
    # While it runs, another command starting on the host leaves it alone
    assert remove_ended_runs(tmp_path) == []
    assert run.path.is_dir()
    run.release()


def test_an_ended_run_is_counted_until_the_next_command_starts(tmp_path):
    # Given a worker run that wrote its files and ended
    ended = RunDirectory.claim(tmp_path, "worker")
    (ended.path / "counter_123.db").write_bytes(b"")
    ended.release()
    assert metric_files.metric_files(tmp_path) == [str(ended.path / "counter_123.db")]
    # When a web starts
    web = RunDirectory.claim(tmp_path, "web")
    # Then the ended run's files are gone, the web's directory is there
    assert not ended.path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [web.path.name]
    web.release()


def test_a_run_left_by_a_killed_command_is_removed(tmp_path):
    # Given a command that claimed its directory and was SIGKILLed (the kernel released its lock)
    script = "import sys; from pathlib import Path; from airy_actors.metric_files import RunDirectory; "
    script += "RunDirectory.claim(Path(sys.argv[1]), 'worker'); import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    [left] = list(tmp_path.iterdir())
    # Then the next command removes it
    assert remove_ended_runs(tmp_path) == [left]


def test_prepare_points_prometheus_client_at_the_run_and_off_leaves_it_in_memory(tmp_path, monkeypatch):
    monkeypatch.delenv(metric_files.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(metric_files, "_claimed", [])
    settings = Settings(data_dir=tmp_path)
    run = metric_files.prepare(settings, "serve")
    assert run is not None and run.path.parent == metrics_root(tmp_path)
    assert os.environ[metric_files.ENVIRONMENT_VARIABLE] == str(run.path)
    assert metric_files.prepare(dataclasses.replace(settings, metrics=False), "serve") is None
    assert metric_files.ENVIRONMENT_VARIABLE not in os.environ
    run.release()


def test_metrics_can_be_turned_off_from_the_environment():
    assert Settings.from_environ({}).metrics is True
    assert Settings.from_environ({"AIRY_METRICS": "off"}).metrics is False
    with pytest.raises(Exception, match="AIRY_METRICS"):
        Settings.from_environ({"AIRY_METRICS": "sometimes"})


def test_the_console_script_imports_prometheus_client_only_after_setting_its_directory():
    # prometheus_client chooses where metrics go when first imported: cli.commands must not import it.
    script = "import sys, cli.commands; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert out.stdout.strip() == "False"
