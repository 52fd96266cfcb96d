"""Writing files atomically: every file cnnative writes (model files, IDX files, downloads)."""
import os
import secrets
from typing import IO, Callable

__all__ = ["atomic_write"]


def atomic_write(path: str, write: Callable[[IO[bytes]], object], func: str) -> None:
    """Call ``write(stream)`` on a temporary file beside ``path``, then move it to ``path``.

    The data reaches the disk (fsync) before the rename, so a crash leaves either the old file
    or the complete new one, never a half-written one.  The file is created with mode 0o666
    minus the umask, like any ordinary new file.  ``func`` names the caller in errors.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{func}: directory {directory!r} of {path!r} does not exist")
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    descriptor = os.open(temporary, flags, 0o666)
    try:
        with open(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
