"""The one error hierarchy. The CLI prints any ``ZooError`` as one line and exits 2."""

from __future__ import annotations


class ZooError(Exception):
    """A problem the user can fix; its message is one complete, actionable line."""


class SpecError(ZooError):
    """A spec file or ``--set`` override is invalid."""


class UnknownNameError(ZooError):
    """A family, named model, data set or capability name is not known."""


class ArtifactError(ZooError):
    """A model folder or its safetensors file is missing, corrupt or inconsistent."""


class DataError(ZooError):
    """A data source cannot be read."""


class WeightsError(ZooError):
    """A network's pretrained weights (e.g. Inception's for FID) are missing or unreadable."""


class PluginError(ZooError):
    """A plugin failed to load or registered something inconsistent."""


class CapabilityError(ZooError):
    """A family was asked for something it does not provide."""


class HubError(ZooError):
    """The Hub cannot be reached, or refuses: a repo, revision or file missing, no permission.

    ``kind`` says which: ``repo``, ``revision``, ``file``, ``library``, ``auth``,
    ``network``, ``offline`` or ``other``.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


class Interrupted(ZooError):
    """Training was stopped by a signal and a checkpoint was written.

    ``exit_status`` is 128 + the signal's number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_status: int = 130) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class Aborted(KeyboardInterrupt):
    """A second SIGINT or SIGTERM while a build stops: it stops at once, unwinding (so no
    temporary is left), without a new checkpoint. ``signum`` is the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
