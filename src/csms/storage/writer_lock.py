"""One CSMS per database file: the writer's lock.

Two CSMS processes on one file both hand out transactionId 1 and overwrite each other's
sessions: each keeps its state in memory and writes it back. So the serving CSMS holds an
exclusive ``flock`` on ``FILE.lock`` beside the database for as long as it runs, and
writes who it is into it (process id, host, start time). A second one fails at start with
:class:`DatabaseInUse`, naming the holder. The lock is the kernel's: it goes with the
process, also after ``kill -9``, so a stale lock file never blocks a restart.

Readers (``status``, ``replay``, ``sessions``) take no lock: SQLite's WAL lets them read
while the writer writes.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator


class DatabaseInUse(Exception):
    """Another process serves this database."""


def lock_path(db_path: str) -> str:
    """The lock file of the database at ``db_path``."""
    return f"{db_path}.lock"


def _holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or "pid" not in data:
        return "another process"
    return (f"process {data.get('pid')} on {data.get('host', '?')}, "
            f"serving since {data.get('since', '?')}")


@contextlib.contextmanager
def exclusive_writer(db_path: str) -> Iterator[None]:
    """Hold the writer's lock of ``db_path`` (nothing for ``:memory:``).

    Raises:
        DatabaseInUse: another process holds it; the message names the holder.
        OSError: the lock file cannot be created.
    """
    if db_path == ":memory:" or db_path.startswith("file:"):
        yield
        return
    path = lock_path(db_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(
                f"{db_path} is in use by another CSMS: {_holder(fd)} (it holds {path}); "
                "one CSMS per database"
            ) from None
        me = json.dumps({
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
