"""Renaming without replacing: the one step that makes publishing an artifact safe against a racing writer."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

_AT_FDCWD = -100  # Linux
_RENAME_NOREPLACE = 1  # Linux renameat2 flag
_RENAME_EXCL = 0x4  # macOS renamex_np flag


def _libc_rename() -> Callable[[bytes, bytes], int] | None:
    """The C call that renames without replacing, or None (then the caller checks, then renames)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        fn = libc.renameat2
        return lambda src, dst: fn(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        fn = libc.renamex_np
        return lambda src, dst: fn(src, dst, _RENAME_EXCL)
    return None


_NATIVE_RENAME = _libc_rename()


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`; FileExistsError if `dst` exists, whatever it is.

    os.rename alone replaces an *empty* directory (and on POSIX any file) at `dst`. renameat2 with
    RENAME_NOREPLACE (Linux, glibc >= 2.28) and renamex_np with RENAME_EXCL (macOS) make the check and
    the rename one atomic step. Elsewhere, or on a filesystem without the flag (EINVAL), `dst` is checked
    immediately before os.rename: an empty directory created in that microsecond window would be replaced.
    """
    if _NATIVE_RENAME is not None:
        if _NATIVE_RENAME(os.fsencode(src), os.fsencode(dst)) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(src), None, str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(src), None, str(dst))
    os.rename(src, dst)
