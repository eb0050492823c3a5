"""Multinomial logistic regression in torch: full-batch L-BFGS with an L2 penalty.

The objective is scikit-learn's (``LogisticRegression(C=C)``, multinomial,
intercept not penalised), divided by ``C n`` so its scale does not grow with n:

    L(W, b) = (1/n) sum_i -log softmax(W x_i + b)_{y_i} + ||W||_F^2 / (2 C n)

:func:`fit` minimises it with ``torch.optim.LBFGS`` (strong-Wolfe line search);
:func:`choose_c` picks C on a grid by stratified k-fold cross-validation on the
labelled examples alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: The C grid :func:`choose_c` searches (inverse L2 strength, as scikit-learn's).
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class Linear:
    """A fitted classifier: logits = x @ weight.T + bias."""

    weight: torch.Tensor  # (K, F)
    bias: torch.Tensor  # (K,)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (N, K) of features (N, F)."""
        return x.to(self.weight.dtype) @ self.weight.T + self.bias

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The fraction of ``x`` whose highest score is its label ``y``."""
        return float((self.logits(x).argmax(1) == y).double().mean())


def objective(model: Linear, x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """The penalised mean cross-entropy L(W, b) above."""
    return (F.cross_entropy(model.logits(x), y)
            + model.weight.square().sum() / (2 * c * len(x)))


def fit(x: torch.Tensor, y: torch.Tensor, classes: int, c: float, max_iter: int = 500,
        tol: float = 1e-7, start: Linear | None = None) -> Linear:
    """The minimiser of :func:`objective` for features ``x`` (N, F), labels ``y`` (N,) in
    0..classes-1 and inverse penalty ``c``, by full-batch L-BFGS (from zero, or ``start``).
    Runs in ``x``'s dtype; stops at ``max_iter`` iterations or a gradient below ``tol``."""
    dtype = x.dtype
    weight = (start.weight.clone() if start is not None
              else x.new_zeros(classes, x.shape[1], dtype=dtype)).requires_grad_(True)
    bias = (start.bias.clone() if start is not None
            else x.new_zeros(classes, dtype=dtype)).requires_grad_(True)
    model = Linear(weight, bias)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                                  tolerance_grad=tol, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(model, x, y, c)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return Linear(weight.detach(), bias.detach())


def stratified_folds(y: torch.Tensor, k: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``k`` disjoint index sets covering ``y``, each with about 1/k of every class."""
    folds: list[list[torch.Tensor]] = [[] for _ in range(k)]
    for label in torch.unique(y):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        for i, chunk in enumerate(members.tensor_split(k)):
            folds[i].append(chunk)
    return [torch.cat(f) for f in folds]


def choose_c(x: torch.Tensor, y: torch.Tensor, classes: int, grid: tuple[float, ...] = C_GRID,
             k: int = 3, seed: int = 0, max_iter: int = 100, rounds: int | None = None,
             tol: float = 1e-5) -> tuple[float, dict[float, float]]:
    """The C of ``grid`` with the best mean held-out-fold accuracy in stratified ``k``-fold
    cross-validation on (x, y) (ties: the smaller C), and every C's accuracy. Each fold
    walks the grid from the strongest penalty up, starting each fit from the last.
    ``rounds``: hold out only the first ``rounds`` folds (default all ``k``; 1 is a
    single validation split, for many labels)."""
    generator = torch.Generator().manual_seed(seed)
    folds = stratified_folds(y, k, generator)
    rounds = k if rounds is None else max(1, min(rounds, k))
    scores = dict.fromkeys(grid, 0.0)
    for i, held in enumerate(folds[:rounds]):
        train = torch.cat([f for j, f in enumerate(folds) if j != i])
        model = None
        for c in sorted(grid):
            model = fit(x[train], y[train], classes, c, max_iter=max_iter, tol=tol, start=model)
            scores[c] += model.accuracy(x[held], y[held]) / rounds
    best = max(sorted(grid), key=lambda c: scores[c])  # max keeps the first (smallest) tie
    return best, scores
