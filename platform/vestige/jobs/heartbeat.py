"""Worker heartbeats in the data directory: which workers run on this machine, and on which queues.

On the embedded default, everything runs on one machine, so a file per worker
refreshed every few seconds answers "is a worker running?" (``vestige
analyze --wait`` runs the work itself when none is) and "is the worker that
claimed this task still alive?" (a new worker re-queues the tasks of lost ones).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from vestige.core.config import Config

INTERVAL_S = 2.0
#: A heartbeat older than this belongs to a worker that is gone.
STALE_AFTER_S = 10.0


def heartbeat_folder(config: Config) -> Path:
    return config.data_dir / "workers"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Refreshes ``<data_dir>/workers/<nodename>.json`` from a thread until stopped."""

    def __init__(self, config: Config, nodename: str, queues: list[str]) -> None:
        self.path = heartbeat_folder(config) / f"{nodename}.json"
        self.record = {"nodename": nodename, "pid": os.getpid(), "queues": queues}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vestige-heartbeat", daemon=True)

    def beat(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.record, "at": time.time()}))
        os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self.beat()

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.path.unlink(missing_ok=True)


def live_workers(config: Config) -> list[dict[str, Any]]:
    """Workers on this machine with a fresh heartbeat and a live process."""
    found = []
    for path in sorted(heartbeat_folder(config).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if time.time() - float(record.get("at", 0)) <= STALE_AFTER_S and _pid_alive(int(record.get("pid", 0))):
            found.append(record)
    return found
