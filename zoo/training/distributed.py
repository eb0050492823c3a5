"""Several processes training one model: per-process rows of global random draws,
gradient and loss averaging, and the data order every process shares.

Every process draws the whole global batch's random numbers from the same
generator and keeps its rows (:class:`Draws`), so an example gets the same
noise for any process count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.core.errors import SpecError

if TYPE_CHECKING:
    import torch


def check_global_batch(batch_size: int, processes: int) -> None:
    """``train.batch_size`` is the global batch: each of the processes must get an equal share."""
    if batch_size % processes:
        raise SpecError(f"train.batch_size = {batch_size} is the global batch; it must be "
                        f"divisible by --processes {processes}")


class Draws:
    """Random draws for this process's rows of a global batch.

    ``randn(n, ...)`` draws ``n * world`` rows from the generator and returns
    rows ``rank * n`` to ``(rank + 1) * n``. With one process it is exactly
    ``torch.randn``; with several, every example gets the numbers it would get
    in a single-process run, and no two processes share noise.
    """

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global-batch tensor (all of it for one process)."""
        if self.world == 1:
            return x
        n = len(x) // self.world
        return x[self.rank * n:(self.rank + 1) * n]

    def _global(self, size: tuple) -> tuple[int, ...]:
        if len(size) == 1 and not isinstance(size[0], int):
            size = tuple(size[0])
        return (size[0] * self.world, *size[1:])

    def randn(self, *size: Any, generator: torch.Generator, device: Any) -> torch.Tensor:
        """Standard normal draws of this process's rows (``size`` as for ``torch.randn``)."""
        import torch

        return self.rows(torch.randn(self._global(size), generator=generator, device=device))

    def rand(self, *size: Any, generator: torch.Generator, device: Any) -> torch.Tensor:
        """Uniform [0, 1) draws of this process's rows."""
        import torch

        return self.rows(torch.rand(self._global(size), generator=generator, device=device))

    def randint(self, high: int, size: tuple[int, ...], generator: torch.Generator,
                device: Any) -> torch.Tensor:
        """Integers in [0, high) for this process's rows."""
        import torch

        return self.rows(torch.randint(high, self._global((size,)), generator=generator,
                                       device=device))


#: Draws of a single process (plain torch draws).
LOCAL = Draws()


def average_gradients(params: list[torch.Tensor], world: int) -> None:
    """Replace each gradient by its mean over the processes: one flat all-reduce."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_processes(losses: dict[str, torch.Tensor], world: int) -> dict[str, torch.Tensor]:
    """Each logged value averaged over the processes (one small all-reduce)."""
    import torch

    if not losses:
        return losses
    stacked = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
    torch.distributed.all_reduce(stacked)
    return dict(zip(losses, stacked / world, strict=True))


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The data order of one epoch; depends only on (seed, epoch), so resume can recompute it."""
    import torch

    from zoo.sampling.sample import sample_seed

    return torch.randperm(n, generator=torch.Generator().manual_seed(sample_seed(seed, epoch, 1)))


def any_process(flag: bool, device: Any) -> bool:
    """Whether ``flag`` is set in any process (one tiny all-reduce)."""
    import torch

    value = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())
