"""File plumbing shared by every reader and writer: line iteration with line numbers, atomic
writes (temporary path, then rename) and checksums."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import zlib
from pathlib import Path
from typing import IO, Callable, Iterator

from rankkit.errors import RankkitError, file_error

UTF8_BOM = b"\xef\xbb\xbf"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
ALMOST_FULL_BYTES = 1 << 20  # a disk with less space available than this counts as full


class DiskFullError(RankkitError):
    """An output could not be written because its disk is full (or the user's quota spent)."""


def free_bytes(folder: str | Path) -> int | None:
    """Bytes available to this user on the disk holding `folder` (None if it cannot be told)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(exc: BaseException, folder: str | Path) -> bool:
    """Whether `exc`, raised while writing into `folder`, means the disk is full: an OSError
    ENOSPC or EDQUOT, or any other error raised while (almost) no space is left there, as
    libraries report a full disk without an errno (torch.save raises RuntimeError("... iostream
    error"), Lucene logs its IOException and commits nothing). Ctrl-C and SIGTERM never count."""
    if isinstance(exc, DiskFullError) or isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    if not isinstance(exc, Exception):
        return False
    free = free_bytes(folder)
    return free is not None and free < ALMOST_FULL_BYTES


def disk_full_error(path: str | Path | None, kept: str = "") -> DiskFullError:
    """The one-line error for a full disk, naming the output (when known) and what was kept."""
    if path is None:
        return DiskFullError(
            "no space left on the disk. Fix: free space on it, or write the output to a folder on another disk"
        )
    path = Path(path)
    return DiskFullError(
        f"{path}: no space left on the disk to write it{f' ({kept})' if kept else ''}. "
        f"Fix: free space on that disk (see `df -h {path.parent}`), or write to a folder on another disk"
    )


def _kept(path: Path, existed: bool) -> str:
    """What a failed atomic write of `path` left: the earlier output, or nothing."""
    left = "the earlier one is unchanged" if existed else "nothing was written"
    return f"{left}; temporary files removed"


def _open_binary(path: Path) -> IO[bytes]:
    if not path.exists():
        raise RankkitError(f"{path}: no such file. Fix: check the path (relative paths start at {Path.cwd()})")
    if path.is_dir():
        raise RankkitError(f"{path}: is a folder, a file was expected. Fix: name the file inside it")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def not_a_file(path: Path) -> str | None:
    """What `path` is when it is no regular file ("missing", "a named pipe (FIFO), not a file", ...),
    found with stat alone, so a FIFO is never opened (reading one blocks until a writer comes);
    None for a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"a device ({os.path.realpath(path)}), not a file"
    return "a socket, not a file" if stat.S_ISSOCK(mode) else "not a regular file"


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each non-blank line, decoded as UTF-8.

    Lines are split on '\\n' only (MS MARCO passages contain U+0085, which str.splitlines would
    treat as a line break); a trailing '\\r' is dropped, and so is a UTF-8 byte-order mark at the
    start of the file (spreadsheet exports write one; kept, it would join the first id).
    Reads lazily, so 8.8M-line files stream.
    """
    path = Path(path)
    number = 0
    with _open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM) :]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise file_error(
                        path,
                        number,
                        f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
                        "re-encode the file as UTF-8",
                    ) from None
                line = line.rstrip("\n").rstrip("\r")
                if line.strip():
                    yield number, line
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise file_error(
                path,
                number + 1,
                f"not a valid gzip file ({exc})",
                "re-compress it with gzip, or drop the .gz suffix if it is plain text",
            ) from None


def json_object(path: Path, number: int, line: str, fix: str = "write one JSON object per line") -> dict:
    """Line `number` of a JSONL file as a dict, or the rankkit error naming the file, line and fix
    (invalid JSON, an integer of over 4,300 digits, nesting too deep, or a value that is no object)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise file_error(path, number, f"invalid JSON ({exc.msg})", fix) from None
    except (ValueError, RecursionError) as exc:
        raise file_error(path, number, f"invalid JSON ({type(exc).__name__})", fix) from None
    if not isinstance(record, dict):
        raise file_error(path, number, "JSON line is not an object", fix)
    return record


def _umask() -> int:
    """The process umask. Linux reports it in /proc without changing it; os.umask can only read it
    by setting it, which briefly gives files that other threads create at that moment mode 0o777."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` only if the block succeeds. A
    full disk (see is_disk_full) is one DiskFullError naming `path`, raised once the temporary
    file is gone."""
    path = Path(path)
    if path.is_dir():
        raise RankkitError(
            f"{path}: is a folder, so a file cannot be written there. "
            f"Fix: name a file, e.g. {path / 'out.txt'}, or another path"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with _disk_full_named(path, existed):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline=None if "b" in mode else "\n") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        full = is_disk_full(exc, path.parent)  # before the temporary file frees its space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise disk_full_error(path, _kept(path, existed)) from None
        raise


@contextlib.contextmanager
def _disk_full_named(path: Path, existed: bool) -> Iterator[None]:
    """A disk too full to hold even the temporary file or folder of `path` is the one-line error."""
    try:
        yield
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(path, _kept(path, existed)) from None
        raise


def _temp_dir_pattern(name: str) -> re.Pattern[str]:
    """Temporary folders atomic_dir makes for `name`: .NAME.<pid>.<random>.tmp."""
    return re.compile(rf"\.{re.escape(name)}\.(\d+)\.[^.]+\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temp_dirs(path: str | Path) -> list[Path]:
    """Remove the temporary folders that killed runs (SIGKILL, power loss) left beside `path`:
    those of processes no longer alive. Returns them."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern, removed = _temp_dir_pattern(path.name), []
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


_held_locks: dict[Path, tuple[int, int]] = {}  # output -> (thread holding its lock, depth)


def _lock_file(lock: Path, path: Path) -> IO[str]:
    """Open and flock `lock` (exclusive, non-blocking); refuse, naming the holder, if a run holds it."""
    while True:
        try:
            handle = open(lock, "a+", encoding="utf-8")
        except OSError as exc:
            raise RankkitError(
                f"{lock}: cannot create the lock file of {path} ({exc.strerror}). "
                "Fix: choose an output in a folder you can write to"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RankkitError(
                f"{path}: another run (process {holder}) is writing this output now. "
                "Fix: wait for it to finish, or choose another output"
            ) from None
        try:  # a run that finished meanwhile removed the file it locked: lock the one now there
            if os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


@contextlib.contextmanager
def output_lock(path: str | Path) -> Iterator[None]:
    """Hold the lock of output `path` for the block: .NAME.lock beside it, flock'd exclusively, so a
    second run writing the same output at the same time (another process, or another thread) is
    refused with the fix instead of silently replacing the first one's work. Nested blocks of one
    run (a trainer's whole run around the training loop's) share the lock. It is released when the
    block ends, on errors and Ctrl-C/SIGTERM too; the system releases it if the process is killed."""
    key = Path(os.path.abspath(path))
    me = threading.get_ident()
    holder, depth = _held_locks.get(key, (me, 0))
    if depth:
        if holder != me:
            raise RankkitError(
                f"{key}: another run in this process is writing this output now. Fix: choose another output"
            )
        _held_locks[key] = (me, depth + 1)
        try:
            yield
        finally:
            _held_locks[key] = (me, depth)
        return
    key.parent.mkdir(parents=True, exist_ok=True)
    lock = key.with_name(f".{key.name}.lock")
    handle = _lock_file(lock, key)
    _held_locks[key] = (me, 1)
    try:
        yield
    finally:
        del _held_locks[key]
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # while still holding it: a run waiting on this file locks a fresh one
        handle.close()


def _check_replaceable(path: Path, overwrite: bool, replaceable: Callable[[Path], bool] | None, what: str) -> None:
    """An output folder may be written when it is new or empty; an existing one is replaced only
    with --overwrite, and, when `replaceable` is given, only if it is `what`."""
    if not path.exists():
        return
    if not path.is_dir():
        raise RankkitError(f"{path}: exists and is a file, not a folder. Fix: choose another name, or move the file")
    if not any(path.iterdir()):
        return
    if replaceable is not None and not replaceable(path):
        raise RankkitError(
            f"{path}: holds files that are not {what}, so rankkit will not write there, even with --overwrite. "
            "Fix: choose another name, or delete or move that folder yourself"
        )
    if not overwrite:
        raise RankkitError(f"{path}: already exists. Fix: choose another name or pass --overwrite")


def _usual_permissions(folder: Path) -> None:
    """Give `folder` and everything in it at least the permissions the umask allows: mkdtemp
    makes 0700 folders, and libraries that write through temporary files (transformers'
    model.safetensors) leave 0600 files."""
    mask = _umask()

    def widen(path: str, usual: int) -> None:
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | usual & ~mask)

    for root, _, files in os.walk(folder):  # every folder is a root once
        widen(root, 0o777)
        for name in files:
            if not os.path.islink(path := os.path.join(root, name)):
                widen(path, 0o666)


def _remove(path: Path) -> None:
    """Remove a folder, or only the link when `path` is a symbolic link (never what it points to)."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(
    path: str | Path,
    overwrite: bool = False,
    replaceable: Callable[[Path], bool] | None = None,
    what: str = "rankkit output",
    lock: bool = True,
) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it becomes `path` only if the block succeeds, so a
    failed or interrupted run leaves the old `path` as it was.

    A new or empty `path` is written; an existing one is replaced only with `overwrite`, and,
    when `replaceable` is given, only if `replaceable(path)` says it is `what` (e.g. an index
    rankkit built): a folder of other files is refused, --overwrite or not. The one rule of every
    command that writes an output folder. With `lock`, the block holds `path`'s output_lock, so a
    concurrent run into the same output is refused. Stale temporaries of killed runs for `path`
    are removed. A full disk (see is_disk_full) is one DiskFullError naming `path`, raised once
    the temporary folder is gone."""
    path = Path(path)
    _check_replaceable(path, overwrite, replaceable, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(path) if lock else contextlib.nullcontext():
        remove_stale_temp_dirs(path)
        existed = path.exists() or path.is_symlink()
        with _disk_full_named(path, existed):
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            _usual_permissions(tmp)
            if path.exists() or path.is_symlink():
                _check_replaceable(path, overwrite, replaceable, what)  # it may have changed meanwhile
                old = path.with_name(f".{path.name}.old")
                _remove(old)
                os.replace(path, old)
                os.replace(tmp, path)
                _remove(old)
            else:
                os.replace(tmp, path)
        except BaseException as exc:
            full = is_disk_full(exc, path.parent)  # before the temporary folder frees its space
            shutil.rmtree(tmp, ignore_errors=True)
            if full:
                raise disk_full_error(path, _kept(path, existed)) from None
            raise


@contextlib.contextmanager
def removed_if_new_and_failed(path: str | Path, keep: Callable[[Path], bool]) -> Iterator[None]:
    """For an output written in place (training without --overwrite, which resumes from its
    checkpoints): if the block fails and `path` was absent or empty before it, remove `path` again
    unless `keep(path)` finds something worth keeping (a checkpoint to resume from), so a run that
    fails before it has anything to resume leaves nothing behind."""
    path = Path(path)
    new = not path.exists() or path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    try:
        yield
    except BaseException:
        if new and path.is_dir() and not path.is_symlink() and not keep(path):
            shutil.rmtree(path, ignore_errors=True)
        raise


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
