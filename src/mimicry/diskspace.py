"""Room to write: free space and the file-size limit checked before a write, and the one-line
error for a write that failed anyway (full disk, ``ulimit -f``, read-only filesystem).

HDF5 reacts badly to a write that fails half-way (h5py raises ``RuntimeError`` or
``OSError``; a failed write during a merge has been seen to crash the process), so writers
check the room they need first and refuse with a clear line; whatever still fails is turned
into the same line by :func:`write_error`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

from .errors import MimicryError

log = logging.getLogger(__name__)
_HDF5_BROKEN = False
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
    if no == errno.EFBIG or "errno = 27" in text:
        return MimicryError(f"file-size limit (ulimit -f) reached while {what}", file=path,
                            fix=_FIX)
    if no == errno.EROFS or "Read-only" in text:
        return MimicryError(f"read-only filesystem while {what}", file=path,
                            fix="choose an --out on a writable filesystem")
    limit = file_size_limit()
    if limit is not None:  # HDF5 often reports only "file write failed"
        return MimicryError(f"write failed while {what} ({text.splitlines()[0][:80]}); the "
                            f"file-size limit (ulimit -f) is {_mib(limit)}", file=path,
                            fix=_FIX)
    with contextlib.suppress(OSError):
        st = os.statvfs(Path(path).parent)
        if st.f_bavail * st.f_frsize < (1 << 20):
            return MimicryError(f"disk full while {what}", file=path, fix=_FIX)
    first = (getattr(e, "strerror", None) or text.splitlines()[0] if text else
             type(e).__name__)[:120]
    return MimicryError(f"cannot write ({first}) while {what}", file=path,
                        fix="choose a writable --out path; finished items are kept")


def hdf5_broken() -> bool:
    """Return whether an HDF5 write failed in this process (its library state is suspect).

    HDF5 keeps a file whose close failed open and retries at interpreter exit, which can
    crash the process (a segfault after the error was printed); the CLI then exits with
    ``os._exit`` instead of the normal shutdown.
    """
    return _HDF5_BROKEN


def mark_hdf5_broken() -> None:
    """Record that an HDF5 write failed in this process (see :func:`hdf5_broken`)."""
    global _HDF5_BROKEN
    _HDF5_BROKEN = True


@contextlib.contextmanager
def quiet_hdf5_cleanup() -> Iterator[None]:
    """Log (not print) errors h5py raises while freeing objects of a write that failed.

    After a failed write, h5py's object destructors try to flush and fail again; Python
    prints those as tracebacks (through ``sys.excepthook`` and ``sys.unraisablehook``). The
    write's own error is reported once, as one line.
    """
    old, old_except = sys.unraisablehook, sys.excepthook

    def except_hook(tp, value, tb):  # Cython prints destructor errors through excepthook too
        if isinstance(value, (OSError, RuntimeError)):
            log.debug("ignored while freeing HDF5 objects: %s", value)
        else:
            old_except(tp, value, tb)

    def hook(u):
        if "h5py" in repr(getattr(u, "object", "")) or isinstance(u.exc_value,
                                                                  (OSError, RuntimeError)):
            log.debug("ignored while freeing HDF5 objects: %s", u.exc_value)
        else:
            old(u)

    global _HDF5_BROKEN
    sys.unraisablehook, sys.excepthook = hook, except_hook
    try:
        yield
    except BaseException:
        _HDF5_BROKEN = True
        raise
    finally:
        import gc

        gc.collect()  # free the failed file's objects while the hook is in place
        sys.unraisablehook, sys.excepthook = old, old_except


@contextlib.contextmanager
def guarded_hdf5_write(dest: str | Path, tmp: Path, what: str) -> Iterator[None]:
    """Run an HDF5 write of ``tmp`` (renamed onto ``dest``); any failure -> one line.

    h5py ``OSError``/``RuntimeError`` (full disk, ``ulimit -f``) become
    :func:`write_error`'s line, ``tmp`` is removed and the process is marked (see
    :func:`hdf5_broken`); the destructor noise of the failed file is logged, not printed.
    """
    err = None
    with quiet_hdf5_cleanup():
        try:
            yield
        except (OSError, RuntimeError) as e:
            Path(tmp).unlink(missing_ok=True)
            err = write_error(dest, e, what)
            mark_hdf5_broken()
    if err is not None:
        raise err
