"""Deadlines under `make run` (issue 10, item 15): with no Celery broker the development server runs the beat
schedule itself (broker/scheduler.py), so the sweeper, vendor-deletion polls, webhook retries and tree heads keep
their cadence. The scheduler is tested with an injected clock, and for real under `manage.py runserver`."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings

from broker import scheduler

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _scheduler(schedule, clock, fail=()):
    ran: list[tuple[float, str]] = []

    def run(task):
        ran.append((clock.now - 1000.0, task))
        if task in fail:
            raise RuntimeError("boom")

    return scheduler.Scheduler(schedule, clock=clock, run=run), ran


def test_each_entry_runs_exactly_when_due_at_its_own_cadence():
    clock = Clock()
    plan, ran = _scheduler(
        {"fast": {"task": "t.fast", "schedule": 5.0}, "slow": {"task": "t.slow", "schedule": 60.0}}, clock
    )
    for second in range(0, 121):
        clock.now = 1000.0 + second
        plan.run_pending()
        clock.now = 1000.0 + second + 0.999  # just before the next second: nothing new is due in between
        plan.run_pending()
    assert [t for t, task in ran if task == "t.fast"] == [float(s) for s in range(0, 121, 5)]
    assert [t for t, task in ran if task == "t.slow"] == [0.0, 60.0, 120.0]


def test_the_real_schedule_is_the_beat_schedule_and_the_sweeper_keeps_the_shortest_deadline():
    clock = Clock()
    plan, ran = _scheduler(settings.CELERY_BEAT_SCHEDULE, clock)
    assert {e.task for e in plan.entries} == {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    plan.run_pending()
    assert {task for _, task in ran} == {e.task for e in plan.entries}  # every entry runs once at start
    ran.clear()
    clock.now += settings.IDBROKER_ABANDONED_TTL.total_seconds() / 2
    plan.run_pending()
    assert "verification.tasks.purge_expired" in {task for _, task in ran}


def test_falling_behind_runs_once_then_keeps_the_cadence_from_now():
    clock = Clock()
    plan, ran = _scheduler({"sweep": {"task": "t.sweep", "schedule": 60.0}}, clock)
    plan.run_pending()
    clock.now += 3600  # a suspended laptop
    plan.run_pending()
    plan.run_pending()
    assert len(ran) == 2
    clock.now += 59.9
    plan.run_pending()
    assert len(ran) == 2
    clock.now += 0.1
    plan.run_pending()
    assert len(ran) == 3


def test_a_failing_task_is_logged_and_does_not_stop_the_others(caplog):
    clock = Clock()
    plan, ran = _scheduler(
        {"bad": {"task": "t.bad", "schedule": 10.0}, "good": {"task": "t.good", "schedule": 10.0}},
        clock,
        fail={"t.bad"},
    )
    plan.run_pending()
    clock.now += 10
    plan.run_pending()
    assert [task for _, task in ran] == ["t.bad", "t.good", "t.bad", "t.good"]
    failures = [r for r in caplog.records if getattr(r, "event", "") == "scheduler.failed"]
    assert len(failures) == 2 and failures[0].code == "t.bad" and failures[0].exc_type == "RuntimeError"


def test_the_loop_stops_when_asked():
    clock = Clock()
    plan, _ = _scheduler({"x": {"task": "t.x", "schedule": 3600.0}}, clock)
    stop = threading.Event()
    thread = threading.Thread(target=plan.run_forever, args=(stop,), kwargs={"max_sleep": 0.05}, daemon=True)
    thread.start()
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_it_starts_only_for_runserver_in_the_serving_process_without_a_broker(settings):
    settings.CELERY_BROKER_URL = ""
    assert scheduler.wanted(["manage.py", "runserver"], {"RUN_MAIN": "true"})
    assert scheduler.wanted(["manage.py", "runserver", "--noreload"], {})
    assert not scheduler.wanted(["manage.py", "runserver"], {})  # the autoreloader's parent
    assert not scheduler.wanted(["manage.py", "migrate"], {"RUN_MAIN": "true"})
    assert not scheduler.wanted(["gunicorn", "broker.wsgi"], {})
    settings.IDBROKER_EMBEDDED_SCHEDULER = False
    assert not scheduler.wanted(["manage.py", "runserver"], {"RUN_MAIN": "true"})
    settings.IDBROKER_EMBEDDED_SCHEDULER = True
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"  # celery beat owns the schedule
    assert not scheduler.wanted(["manage.py", "runserver"], {"RUN_MAIN": "true"})


def test_only_one_scheduler_runs_per_var_folder(tmp_path):
    first = scheduler._take_instance_lock(tmp_path / "scheduler.lock")
    assert first is not None
    try:
        assert scheduler._take_instance_lock(tmp_path / "scheduler.lock") is None
    finally:
        first.close()
    again = scheduler._take_instance_lock(tmp_path / "scheduler.lock")
    assert again is not None
    again.close()


# --- For real: `manage.py runserver` in the embedded default ----------------------------------------------------


def _embedded_env(var: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("IDBROKER_", "SECURE_", "DJANGO_"))}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"):
        keep.pop(name, None)
    keep = {k: v for k, v in keep.items() if not k.endswith("_COOKIE_SECURE")}
    return {**keep, "DEBUG": "true", "IDBROKER_VAR_DIR": str(var), "LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}


def _manage(env, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def _newest_head(database: Path) -> int:
    with sqlite3.connect(database, timeout=5) as db:
        return db.execute("SELECT COALESCE(MAX(tree_size), 0) FROM audit_treehead").fetchone()[0]


def test_runserver_in_the_embedded_default_runs_the_beat_schedule(tmp_path):
    env = _embedded_env(tmp_path)
    _manage(env, "setup")  # a signing key and a first tree head
    database = tmp_path / "idbroker.sqlite3"
    covered = _newest_head(database)
    # A new audit entry the tree head does not cover yet: only a scheduled publish-tree-head can sign it.
    _manage(
        env,
        "create_provider",
        "--name",
        "Later",
        "--redirect-uri",
        "https://later.example/cb",
        "--claims",
        "age_over_18",
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],  # with the autoreloader, as `make run`
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and _newest_head(database) <= covered:
            assert server.poll() is None, log_path.read_text()
            time.sleep(0.5)
        assert _newest_head(database) > covered, log_path.read_text()
        while time.monotonic() < deadline and "verification.tasks.purge_expired" not in log_path.read_text():
            time.sleep(0.2)
        output = log_path.read_text()
        assert '"scheduler.ran"' in output and "verification.tasks.purge_expired" in output, output
        assert output.count('"scheduler.started"') == 1, output  # the reloader's parent did not start one
        assert '"scheduler.failed"' not in output, output
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
