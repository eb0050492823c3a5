"""Run many small tensor operations on one thread.

The non-parametric samplers issue thousands of operations on a few kilobytes
each; splitting those across threads only adds synchronisation, and on a
loaded machine it made a 64×64 texture take 9 s instead of 0.25 s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Within the block, torch uses one intra-op thread; the previous count is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
