"""Where a build writes: the destination checks, the ``OUT.ckpt`` checkpoint folder,
and stopping cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from zoo.core.errors import Aborted, ArtifactError

CHECKPOINT_SUFFIX = ".ckpt"


def checkpoint_dir(out: Path) -> Path:
    """Where an unfinished build keeps its checkpoint: a sibling ``OUT.ckpt``."""
    return out.with_name(out.name + CHECKPOINT_SUFFIX)


def check_destination(out: Path, resume: bool, force: bool) -> Path | None:
    """Raise unless a build may write ``out``; return the checkpoint to resume from, if any.

    Checked before training (and before ``--processes`` launches anything), not after.
    """
    from zoo.artifact import replaceable

    out = Path(out).resolve()
    ckpt = checkpoint_dir(out)
    source = _resume_source(out, ckpt) if resume else None
    if out.exists() and not replaceable(out):
        raise ArtifactError(f"refusing to replace {out}: not a genzoo model folder")
    if source is None and not force:
        if out.exists():
            raise ArtifactError(f"{out} already exists; pass --force to replace it or --resume")
        if ckpt.exists():
            raise ArtifactError(f"an interrupted build left {ckpt}; pass --resume to continue it "
                                "or --force to start over")
    return source


class StopOnSignal:
    """Within the block, the first SIGINT (Ctrl-C) or SIGTERM only sets ``requested``.

    The training loop then checkpoints at the next step boundary and raises
    :class:`Interrupted` with exit status 128 + the signal's number (130 for
    SIGINT, 143 for SIGTERM, as a shell reports a process killed by it). A
    second signal aborts at once (:class:`zoo.core.errors.Aborted`, a
    ``KeyboardInterrupt``). Outside the main thread no handler can be installed
    and the block changes nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> StopOnSignal:
        self.requested = False
        self.signum = signal.SIGINT
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    @property
    def cause(self) -> str:
        """What stopped the build, for messages: ``interrupted`` or ``terminated``."""
        return "terminated (SIGTERM)" if self.signum == signal.SIGTERM else "interrupted"

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise Aborted(signum)
        self.requested, self.signum = True, signum
        again = "Ctrl-C" if signum == signal.SIGINT else "signal"
        print(f"\nstopping after this step ({again} again to abort)", file=sys.stderr,
              flush=True)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _resume_source(out: Path, ckpt: Path) -> Path:
    from zoo.artifact import TRAINING_STATE
    from zoo.training.checkpoint import META

    for candidate in (ckpt, out / TRAINING_STATE):
        if (candidate / META).is_file():
            return candidate
    raise ArtifactError(f"nothing to resume: neither {ckpt} nor {out / TRAINING_STATE} exists")
