"""The beat schedule, run in-process for the embedded default (issue 10, item 15).

`make run` is DEBUG, SQLite and eager Celery: no broker, so no `celery beat`, and without beat abandoned evidence
outlived its 30-minute deadline (SPEC 3.1), vendor deletions stayed pending, webhook retries and tree heads never
happened. So `runserver` with no CELERY_BROKER_URL starts this scheduler in a daemon thread (BrokerConfig.ready):

1. It runs exactly the entries of settings.CELERY_BEAT_SCHEDULE, each at its own cadence, by calling the task in
   this process (eagerly: whatever the task enqueues runs at once too). Every entry is due once at start, so a
   restart sweeps what the previous run left behind.
2. A run that falls behind (a slow task, a suspended laptop) runs once and is rescheduled from now: missed runs
   are not replayed one after another, as beat does.
3. A task that raises is logged (its name and the exception type only) and tried again at its next cadence.
4. One instance per VAR_DIR: an exclusive lock on var/scheduler.lock, held for the life of the process (so two
   `make run`s on one database do not both sweep), and one per process (the autoreloader's parent never starts it).
5. It stops with the server: a daemon thread, and an event set at exit.

With a broker configured, `celery beat` owns the schedule and this never starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)


@dataclass
class Entry:
    name: str
    task: str
    every: float  # seconds
    next_due: float


def _seconds(schedule) -> float | None:
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
    return run_every.total_seconds() if isinstance(run_every, timedelta) else None


def run_task(dotted: str) -> object:
    """Call a Celery task in this thread, with fresh database connections around it (a long-lived thread must not
    keep a connection past CONN_MAX_AGE or a broken one)."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return import_string(dotted)()
    finally:
        close_old_connections()


class Scheduler:
    """The beat schedule with an injected clock (monotonic seconds) and task runner, so tests control time."""

    def __init__(
        self, schedule: dict, *, clock: Callable[[], float] = time.monotonic, run: Callable[[str], object] = run_task
    ):
        self.clock = clock
        self.run = run
        start = clock()
        self.entries: list[Entry] = []
        for name, spec in schedule.items():
            every = _seconds(spec.get("schedule"))
            if every is None or every <= 0:
                log.warning("schedule entry skipped", extra={"event": "scheduler.skipped", "code": name})
                continue
            self.entries.append(Entry(name=name, task=spec["task"], every=every, next_due=start))

    def run_pending(self) -> list[str]:
        """Run every entry due now (steps 1-3); return their names in schedule order."""
        ran = []
        for entry in self.entries:
            now = self.clock()
            if now < entry.next_due:
                continue
            try:
                self.run(entry.task)
                log.debug("scheduled task ran", extra={"event": "scheduler.ran", "code": entry.task})
            except Exception as exc:  # noqa: BLE001 - one failing task must not stop the deadlines of the others
                log.error(
                    "scheduled task failed",
                    extra={"event": "scheduler.failed", "code": entry.task, "exc_type": type(exc).__name__},
                )
            ran.append(entry.name)
            # The next cadence; if that is already past (we fell behind), one period from now (step 2).
            entry.next_due += entry.every
            if entry.next_due <= now:
                entry.next_due = now + entry.every
        return ran

    def seconds_until_next(self) -> float:
        if not self.entries:
            return 60.0
        return max(0.0, min(e.next_due for e in self.entries) - self.clock())

    def run_forever(self, stop: threading.Event, *, max_sleep: float = 1.0) -> None:
        # Started from an AppConfig.ready(): the tasks import models of apps that may not be ready yet.
        from django.apps import apps

        while not apps.ready and not stop.wait(0.05):
            pass
        while not stop.is_set():
            self.run_pending()
            stop.wait(min(self.seconds_until_next(), max_sleep))


# --- Starting it with the development server ---------------------------------------------------------------------

_started: threading.Thread | None = None
_start_lock = threading.Lock()
_lock_file = None


def _take_instance_lock(path: Path):
    """An exclusive, non-blocking lock on `path`; the open file (keep it) or None if another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def wanted(argv: list[str] | None = None, environ=None) -> bool:
    """Start only under `runserver`, in the process that serves (the autoreloader's child, or --noreload), with no
    Celery broker configured, unless switched off."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if settings.CELERY_BROKER_URL or not getattr(settings, "IDBROKER_EMBEDDED_SCHEDULER", True):
        return False
    if len(argv) < 2 or argv[1] != "runserver":
        return False
    return environ.get("RUN_MAIN") == "true" or "--noreload" in argv


def start() -> threading.Thread | None:
    """Start the scheduler thread once per process and per VAR_DIR (steps 4-5); None if it runs elsewhere."""
    global _started, _lock_file
    with _start_lock:
        if _started is not None:
            return _started
        handle = _take_instance_lock(Path(settings.VAR_DIR) / "scheduler.lock")
        if handle is None:
            log.warning("in-process scheduler not started: another process runs it", extra={"code": "locked"})
            return None
        _lock_file = handle
        stop = threading.Event()
        atexit.register(stop.set)
        scheduler = Scheduler(settings.CELERY_BEAT_SCHEDULE)
        thread = threading.Thread(target=scheduler.run_forever, args=(stop,), name="idbroker-scheduler", daemon=True)
        thread.start()
        log.info(
            "in-process scheduler started",
            extra={"event": "scheduler.started", "count": str(len(scheduler.entries))},
        )
        _started = thread
        return thread
