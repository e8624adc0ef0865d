"""Whether the message store's files are still the ones it opened, and safe to write through.

Two failures of the files under a running gateway are not SQLite errors at all:

- The database file deleted or replaced (rm, mv, a restore copied over it). SQLite goes on
  writing into the file it has open: every transaction commits, and what it holds vanishes when
  the process stops (measured: 100 of 100 MOs acknowledged, none left after the restart).
- The files made unwritable while open (`chattr +i`, a filesystem gone read-only) or the -shm
  file truncated. SQLite keeps the WAL index in <db>-shm, mapped into memory; a write to a
  mapped page the kernel cannot back is not an error code but SIGBUS, which kills the process
  without a log line. Measured: `chattr +i` on the three files killed an async gateway in 2 of
  4 runs, inside the writer's BEGIN IMMEDIATE (the read mark it writes into -shm). Each
  transaction writes -shm (read mark, WAL index, checkpoint), so it must not start then.

`StoreFiles.check()` looks, by path and without opening anything (closing any descriptor of
a file drops every POSIX lock this process holds on it, SQLite's included), at what can be
seen before a transaction starts: each file still the same inode (st_dev, st_ino) as at open,
none immutable or append-only (statx attributes), the -shm not shorter than seen before, the
filesystem not read-only. One statx per file and one statvfs: about 7 µs, once per batch (2 µs of it the system calls).
`still_there()` is the one stat of the database file made after each COMMIT, before any
MO of the batch is acknowledged.

Readers write -shm too (a read mark, when the WAL grew since the last one): the writer reads
once after each COMMIT so that the mark is there, and the gateway asks `MessageStore.refusal`
before an MO's lookups. What no check closes is a change landing inside a transaction
(between the check and the end of COMMIT, mostly its fsync): SIGBUS remains possible then.
"""

from __future__ import annotations

import ctypes
import errno
import ctypes.util
import os
from dataclasses import dataclass

_STATX_BASIC_STATS = 0x7FF
_STATX_ATTR_IMMUTABLE = 0x10
_STATX_ATTR_APPEND = 0x20
_AT_FDCWD = -100


class _StatxTimestamp(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32), ("reserved", ctypes.c_int32)]


class _Statx(ctypes.Structure):   # struct statx, linux/stat.h
    _fields_ = [
        ("mask", ctypes.c_uint32), ("blksize", ctypes.c_uint32), ("attributes", ctypes.c_uint64),
        ("nlink", ctypes.c_uint32), ("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32),
        ("mode", ctypes.c_uint16), ("spare0", ctypes.c_uint16), ("ino", ctypes.c_uint64),
        ("size", ctypes.c_uint64), ("blocks", ctypes.c_uint64), ("attributes_mask", ctypes.c_uint64),
        ("atime", _StatxTimestamp), ("btime", _StatxTimestamp), ("ctime", _StatxTimestamp),
        ("mtime", _StatxTimestamp), ("rdev_major", ctypes.c_uint32), ("rdev_minor", ctypes.c_uint32),
        ("dev_major", ctypes.c_uint32), ("dev_minor", ctypes.c_uint32), ("spare", ctypes.c_uint64 * 14),
    ]


class _Statvfs(ctypes.Structure):   # struct statvfs, glibc
    _fields_ = [
        ("bsize", ctypes.c_ulong), ("frsize", ctypes.c_ulong), ("blocks", ctypes.c_uint64),
        ("bfree", ctypes.c_uint64), ("bavail", ctypes.c_uint64), ("files", ctypes.c_uint64),
        ("ffree", ctypes.c_uint64), ("favail", ctypes.c_uint64), ("fsid", ctypes.c_ulong),
        ("flag", ctypes.c_ulong), ("namemax", ctypes.c_ulong), ("spare", ctypes.c_int * 6),
    ]


def _libc(name: str, *argtypes):
    """A libc function called with the GIL held (PyDLL): a few µs, and the writer's thread does not
    hand the GIL to the busy loop thread and wait to get it back (writer.py: 20x the context
    switches); measured with CDLL, 64 writers lost a fifth of their MOs/s."""
    try:
        function = getattr(ctypes.PyDLL(ctypes.util.find_library("c"), use_errno=True), name)   # statx: glibc 2.28+
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function


_statx = _libc("statx", ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_Statx))
_statvfs = _libc("statvfs", ctypes.c_char_p, ctypes.POINTER(_Statvfs))


@dataclass(frozen=True)
class FileState:
    dev: int
    ino: int
    size: int
    locked: str | None   # "immutable" or "append-only" when the file's attributes forbid writes


def file_state(path: str) -> FileState:
    """The file at `path` (FileNotFoundError when there is none); statx where libc has it."""
    return FileState(*_stat(os.fsencode(path), _Statx(), path))


def _stat(encoded: bytes, buffer: _Statx, path: str) -> tuple[int, int, int, str | None]:
    """(dev, ino, size, locked) of the file at `path`, given encoded, `buffer` filled by statx."""
    if _statx is None:
        st = os.stat(encoded)
        return st.st_dev, st.st_ino, st.st_size, None
    if _statx(_AT_FDCWD, encoded, 0, _STATX_BASIC_STATS, buffer) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), path) if error != errno.ENOENT else FileNotFoundError(
            error, os.strerror(error), path)
    attributes = buffer.attributes & buffer.attributes_mask
    locked = "immutable" if attributes & _STATX_ATTR_IMMUTABLE else \
        "append-only" if attributes & _STATX_ATTR_APPEND else None
    return os.makedev(buffer.dev_major, buffer.dev_minor), buffer.ino, buffer.size, locked


class StoreFiles:
    """The database file, its -wal and its -shm as they were when the store opened them.

    The paths are encoded and the statx/statvfs buffers made once: the checks run once per
    batch (a check 12 -> 9 us, the four system calls about 2 us each on this host).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self._encoded_directory = os.fsencode(self.directory)
        self._buffer = _Statx()
        self._vfs_buffer = _Statvfs()
        self.opened: dict[str, FileState] = {}
        for name in (path, f"{path}-wal", f"{path}-shm"):
            try:
                self.opened[name] = file_state(name)
            except FileNotFoundError:   # not in WAL mode (no -wal, -shm): nothing to watch
                pass
        # (name, encoded, (dev, ino) at open, is the -shm) for each file watched
        self._watched = [(name, os.fsencode(name), (opened.dev, opened.ino), name.endswith("-shm"))
                         for name, opened in self.opened.items()]
        self._shm_size = self.opened[f"{path}-shm"].size if f"{path}-shm" in self.opened else 0
        self._truncated: str | None = None

    def check(self) -> str | None:
        """None when a transaction may start; else why not, in words for the operator."""
        if self._truncated:
            return self._truncated
        for name, encoded, identity, is_shm in self._watched:
            try:
                dev, ino, size, locked = _stat(encoded, self._buffer, name)
            except FileNotFoundError:
                return _deleted(name)
            if (dev, ino) != identity:
                return f"{name} was replaced while open: restart the gateway to use the new file"
            if locked:
                return f"{name} is {locked} (chattr): SQLite cannot write it"
            if is_shm:
                if size < self._shm_size:
                    self._truncated = (f"{name} was truncated under SQLite's shared memory: it cannot be"
                                       " trusted, restart the gateway")
                    return self._truncated
                self._shm_size = size
        if _read_only(self._encoded_directory, self._vfs_buffer, self.directory):
            return f"the filesystem of {self.path} is read-only"
        return None

    def still_there(self) -> str | None:
        """None when the database path still names the file open; one stat, after each commit."""
        if not self._watched or self._watched[0][0] != self.path:
            return None
        name, encoded, identity, _ = self._watched[0]
        try:
            dev, ino, _, _ = _stat(encoded, self._buffer, name)
        except FileNotFoundError:
            return _deleted(name)
        if (dev, ino) != identity:
            return f"{name} was replaced while open: restart the gateway to use the new file"
        return None


def _deleted(name: str) -> str:
    return (f"{name} was deleted while open: what it holds is readable at /proc/{os.getpid()}/fd/ until this"
            " process stops; restart the gateway to open the path anew")


def _read_only(encoded: bytes, buffer: _Statvfs, directory: str) -> bool:
    if _statvfs is None:
        return bool(os.statvfs(encoded).f_flag & os.ST_RDONLY)
    if _statvfs(encoded, buffer) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), directory)
    return bool(buffer.flag & os.ST_RDONLY)
