"""One build at a time per model folder: a lock beside OUT, held for the whole build.

``zoo build --out OUT`` holds an exclusive ``flock`` on ``.OUT.lock`` (which
holds the holder's pid and host) from before the first step until it exits,
however it exits: the kernel drops the lock of a killed process, so a lock
file left by one is simply taken over. A second build of the same OUT stops
at once with one line naming the holder.

Why not the ``filelock`` package: it truncates the lock file when it opens
it, so the holder's pid could not be read back to name it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from zoo.core.errors import ArtifactError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; builds are not serialised there
    fcntl = None  # type: ignore[assignment]

#: Set by ``zoo build --processes N`` for the processes it launches: the lock file it
#: holds for them, so that the main process does not try to take it a second time.
HELD_ENV = "ZOO_BUILD_LOCK"
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def lock_path(out: Path) -> Path:
    """The lock file of the build of ``out``: ``.OUT.lock`` beside it."""
    out = Path(out).resolve()
    if not out.name:  # "/": no folder to put a lock beside
        raise ArtifactError(f"cannot write {out}: give a folder below it")
    return out.with_name(f".{out.name}.lock")


def make_parents(out: Path) -> list[Path]:
    """Create the folders above ``out``; return those created (deepest last).

    Raises one line when that is impossible (a file in the way, no permission).
    """
    out = Path(out).resolve()
    if not out.name:
        raise ArtifactError(f"cannot write {out}: give a folder below it")
    missing = []
    parent = out.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise ArtifactError(f"cannot write {out}: {parent} is a file, not a folder")
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise ArtifactError(f"cannot write {out}: {folder} is a file, not a folder"
                                    ) from None
        except OSError as exc:
            raise ArtifactError(f"cannot write {out}: cannot create {folder} "
                                f"({exc.strerror})") from None
    return list(reversed(missing))


class BuildLock:
    """An exclusive lock on building ``out``; use as a context manager.

    Entering creates the folders above ``out`` (so a destination that cannot be
    written fails before any training) and takes the lock; leaving releases it,
    removes the lock file, and removes the folders it created if they stayed
    empty.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out).resolve()
        self.path = lock_path(self.out)
        self.fd: int | None = None
        self.created: list[Path] = []
        self.previous_holder = ""  # what a stale lock file said (a killed build), if anything

    def __enter__(self) -> BuildLock:
        self.created = make_parents(self.out)
        try:
            self._acquire()
        except BaseException:
            self._remove_created()
            raise
        return self

    def _acquire(self) -> None:
        while True:
            try:
                # never through a symbolic link: the pid would be written into its target
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
            except OSError as exc:
                if self.path.is_symlink():
                    raise ArtifactError(f"cannot write {self.out}: {self.path} is a symbolic "
                                        "link, not a build lock; remove it") from None
                raise ArtifactError(f"cannot write {self.out}: cannot create {self.path} "
                                    f"({exc.strerror})") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device in its place
                os.close(fd)
                raise ArtifactError(f"cannot write {self.out}: {self.path} is not a regular "
                                    "file (a build lock is); remove it")
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = describe(_read(fd))
                os.close(fd)
                raise ArtifactError(f"another build ({holder}) is writing {self.out}; wait for "
                                    "it to finish or stop it") from None
            except OSError as exc:  # a file system without locks (some network mounts)
                print(f"warning: cannot lock {self.path} ({exc.strerror}); another build of "
                      f"{self.out} would go unnoticed", file=sys.stderr)
                break
            # the holder before us may have removed the file after we opened it:
            # then our lock is on a file nobody else sees, so take the new one
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.previous_holder = _read(fd)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still locked, so nobody takes the old file
        os.close(self.fd)
        self.fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in reversed(self.created):  # deepest first; only those still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.created = []


def describe(holder: str) -> str:
    """``"pid 123 on host"`` from a lock file's ``"123 host"``."""
    pid, _, host = holder.partition(" ")
    if not pid.isdigit():  # empty, or not a lock file genzoo wrote
        return "another process"
    return f"pid {pid} on {host}" if host else f"pid {pid}"


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode(errors="replace").strip()
    return ""


@contextlib.contextmanager
def claim(out: Path, report: Callable[[str], None] | None = None
          ) -> Iterator[BuildLock | None]:
    """Hold the build lock of ``out`` and clean up after builds of it that died.

    Stale temporaries of ``out`` and ``out.ckpt`` are removed (or a previous
    folder restored, see :func:`zoo.artifact.tidy_leftovers`), one ``note:``
    line on stderr each; then a temporary folder is made and removed, so that
    a destination that cannot be written fails now, not after training.
    Under ``zoo build --processes N`` the launcher holds the lock and has
    cleaned up already: then this does nothing.
    """
    from zoo.artifact import replaceable, temp_sibling, tidy_leftovers
    from zoo.training.destination import CHECKPOINT_SUFFIX, checkpoint_dir

    out = Path(out).resolve()
    if os.environ.get(HELD_ENV) == str(lock_path(out)):
        yield None
        return
    if out.name.endswith(CHECKPOINT_SUFFIX) and out.name != CHECKPOINT_SUFFIX:
        # the build of OUT writes and at last deletes OUT.ckpt, under another lock
        raise ArtifactError(f"cannot write {out}: a name ending in {CHECKPOINT_SUFFIX} is the "
                            f"checkpoint of a build of {out.name[:-len(CHECKPOINT_SUFFIX)]}; "
                            "choose another name")
    with contextlib.suppress(OSError):  # a deleted cwd: nothing to protect
        if Path.cwd().is_relative_to(out):  # replacing it would pull the shell's cwd away
            raise ArtifactError(f"cannot write {out}: it is (or holds) the current folder; "
                                "run the build from outside it")
    for parent in out.parents:  # a later --force of that folder would delete this model
        try:
            inside_genzoo = parent.is_dir() and any(parent.iterdir()) and replaceable(parent)
        except OSError:  # a folder we may pass through but not list
            inside_genzoo = False
        if inside_genzoo:
            raise ArtifactError(f"cannot write {out}: it is inside the genzoo folder {parent}; "
                                "give an OUT outside it")
    report = report or _note
    with BuildLock(out) as lock:
        if lock.previous_holder and not lock.previous_holder.startswith(f"{os.getpid()} "):
            report(f"note: took over the lock of a build that is no longer running "
                   f"({describe(lock.previous_holder)})")
        for target in (out, checkpoint_dir(out)):
            tidy_leftovers(target, report)
        ckpt = checkpoint_dir(out)
        if (ckpt.exists() or ckpt.is_symlink()) and not (
                ckpt.is_dir() and replaceable(ckpt.resolve())):
            # a checkpoint would replace it, and a finished build delete it
            raise ArtifactError(f"cannot write {out}: {ckpt} is in the way and is not a genzoo "
                                "checkpoint; move it")
        probe = temp_sibling(checkpoint_dir(out), "tmp")  # the longest name a build writes
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError as exc:
            raise ArtifactError(f"cannot write {out}: {exc.strerror}") from None
        yield lock


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
