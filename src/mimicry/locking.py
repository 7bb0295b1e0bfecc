"""One lock discipline for every writer (generate, capture, run, organism train, consolidate).

A writer takes :func:`writer_lock` on its output *before it touches anything*: the lock is
an ``fcntl.flock`` on a hidden sibling file ``.<name>.lock`` (beside the output file or
folder), so it is released by the kernel when the holder dies (SIGKILL included) and never
goes stale. A second writer is refused at once with one line naming the output; a refused
writer has created nothing but (maybe) the lock file the holder also uses, and removes
nothing.

The lock file is unlinked by the holder on release. To stay correct with that (a waiter
could otherwise lock an unlinked inode while a third process locks a new file), a process
that gets the lock checks that the path still names the inode it locked, and retries if not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import MimicryError


class LockedError(MimicryError):
    """Another process is writing the same output."""


def lock_path(path: str | Path) -> Path:
    """Return the lock file of output ``path`` (a hidden sibling ``.<name>.lock``)."""
    p = Path(path)
    return p.with_name(f".{p.name.rstrip('/')}.lock")


class WriterLock:
    """An exclusive, non-blocking lock on an output; ``release()`` (or ``with``) frees it."""

    def __init__(self, path: str | Path, what: str = "writer") -> None:
        self.path = Path(path)
        self.what = what
        self.file = lock_path(self.path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Return whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> WriterLock:
        """Take the lock; raise :class:`LockedError` if another process holds it."""
        for _ in range(20):
            try:
                fd = os.open(self.file, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as e:
                raise MimicryError(
                    f"cannot create the lock file {self.file.name} "
                    f"({e.strerror or e})", file=self.path,
                    fix="choose an --out in a writable folder") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise LockedError(
                    f"another {self.what} is writing this output (lock {self.file.name} "
                    "is held)", file=self.path,
                    fix="wait for it to finish or choose another --out; nothing was changed"
                ) from None
            try:
                same = os.stat(self.file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)  # the holder released and unlinked it meanwhile: try the new file
        raise LockedError("the lock file keeps changing", file=self.path,
                          fix="another writer is starting and stopping; try again")

    def release(self) -> None:
        """Unlink the lock file and release the lock (only if held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.file.unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> WriterLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def writer_lock(path: str | Path, what: str = "writer") -> Iterator[WriterLock]:
    """Hold the exclusive writer lock of output ``path`` for the block (refused: raises)."""
    lock = WriterLock(path, what).acquire()
    try:
        yield lock
    finally:
        lock.release()
