"""Room to write: free space and the file-size limit checked before a write, and the one-line
error for a write that failed anyway (full disk, ``ulimit -f``, read-only filesystem).

HDF5 reacts badly to a write that fails half-way (h5py raises ``RuntimeError`` or
``OSError``; a failed write during a merge has been seen to crash the process), so writers
check the room they need first and refuse with a clear line; whatever still fails is turned
into the same line by :func:`write_error`.
"""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

from .errors import MimicryError

_FIX = ("free disk space (or raise the limit) or choose another --out; finished items are kept "
        "and the same command resumes")


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def file_size_limit() -> int | None:
    """Return this process's file-size limit in bytes (``ulimit -f``), or None if unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def check_room(folder: str | Path, nbytes: int, what: str, largest: int | None = None) -> None:
    """Raise :class:`MimicryError` if ``nbytes`` will not fit in ``folder``.

    ``largest``: the biggest single file among them (default ``nbytes``), checked against
    the file-size limit.
    """
    folder = Path(folder)
    limit = file_size_limit()
    big = nbytes if largest is None else largest
    if limit is not None and big > limit:
        raise MimicryError(
            f"file-size limit (ulimit -f) of {_mib(limit)} is below the ~{_mib(big)} "
            f"file {what} writes", file=folder, fix=_FIX)
    try:
        st = os.statvfs(folder)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if nbytes > free:
        raise MimicryError(f"disk full: {what} needs ~{_mib(nbytes)}, {_mib(free)} free",
                           file=folder, fix=_FIX)


def write_error(path: str | Path, e: BaseException, what: str) -> MimicryError:
    """Return the one-line error for a write to ``path`` that failed with ``e``."""
    text = str(e)
    no = getattr(e, "errno", None)
    if no == errno.ENOSPC or "No space" in text:
        return MimicryError(f"disk full while {what}", file=path, fix=_FIX)
    if no == errno.EFBIG or "File too large" in text:
        return MimicryError(f"file-size limit (ulimit -f) reached while {what}", file=path,
                            fix=_FIX)
    if no == errno.EROFS or "Read-only" in text:
        return MimicryError(f"read-only filesystem while {what}", file=path,
                            fix="choose an --out on a writable filesystem")
    first = (getattr(e, "strerror", None) or text.splitlines()[0] if text else
             type(e).__name__)[:120]
    return MimicryError(f"cannot write ({first}) while {what}", file=path,
                        fix="choose a writable --out path; finished items are kept")
