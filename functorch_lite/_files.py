"""Writing a file atomically: a temporary file beside the target, renamed over it once complete."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(
    path: str | os.PathLike[str],
    write: Callable[[str], None],
    what: str | None = None,
    error: type[Exception] | None = None,
) -> None:
    """Call ``write(tmp)`` on a new file beside ``path``, then move it over ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was (absent, or
    its old content). With ``what`` and ``error``, an ``OSError`` becomes ``error`` with a
    message naming ``what``, the path and a fix; otherwise it propagates.
    """
    target = Path(os.fspath(path))
    directory = target.parent if str(target.parent) else Path(".")
    try:
        tmp, mode = _new_temp_file(target, directory)
    except OSError as exc:
        if error is None:
            raise
        raise error(
            f"{what}: cannot write {str(target)!r} ({exc.strerror or exc}); check that the directory exists and "
            "is writable, or pick another path."
        ) from None
    try:
        write(tmp)
        os.chmod(tmp, mode)  # (a writer may replace the file with a 0o600 one of its own)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if error is not None and isinstance(exc, OSError):
            raise error(
                f"{what}: cannot write {str(target)!r} ({exc.strerror or exc}); nothing was written. Check that "
                "the path is not a directory and that the disk has room, or pick another path."
            ) from None
        raise


def _new_temp_file(target: Path, directory: Path) -> tuple[str, int]:
    """An empty temporary file next to ``target``, and the permissions ``open(target, "w")`` would
    give the result: those of an existing ``target``, else ``0o666`` less the umask. (The kernel
    applies the umask to ``os.open``'s mode, which is read back: no process-wide ``os.umask``
    call, which would race with other threads; ``tempfile.mkstemp`` would force ``0o600``.)"""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(directory / f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        try:
            st = os.stat(target)
        except OSError:
            return tmp, mode
        return tmp, (stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else mode)
    raise FileExistsError(f"could not create a temporary file next to {str(target)!r}.")
