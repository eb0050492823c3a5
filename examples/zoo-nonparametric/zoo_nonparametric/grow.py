"""Growing an image from what is known: the synthesis loop of Efros & Leung (1999).

Unknown pixels next to known ones (the frontier) are filled in order of how
much of their window is already known, most first, so the image grows from
its seed, or a hole closes from its boundary inwards (onion peel). Each
step fills up to ``batch`` frontier pixels at once: it gathers their windows,
matches them against every exemplar window (:class:`Matcher`) and copies the
centre pixel (``patch = 1``, the paper) or the centre ``patch × patch`` block
(non-overlapping blocks, only into unknown pixels) of the drawn match.

Known pixels are never written, so an in-painting leaves them bit for bit.
The draw for the pixel at flat index p uses ``u[p]``, one uniform number per
pixel fixed before the loop, so the result is a function of the inputs and
``u`` alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo_nonparametric.windows import Matcher


def frontier_order(known: torch.Tensor, size: int) -> torch.Tensor:
    """Flat indices of the frontier, most-known window first (ties: raster order)."""
    h, w = known.shape
    k = known.double()[None, None]
    neighbours = F.conv2d(k, torch.ones(1, 1, 3, 3, dtype=k.dtype), padding=1)[0, 0]
    in_window = F.conv2d(k, torch.ones(1, 1, size, size, dtype=k.dtype), padding=size // 2)[0, 0]
    index = ((~known) & (neighbours > 0)).flatten().nonzero().squeeze(1)
    key = in_window.flatten()[index] * (h * w) + (h * w - 1 - index)  # exact: small integers
    return index[key.argsort(descending=True)]


def spaced(order: torch.Tensor, width: int, patch: int, batch: int) -> torch.Tensor:
    """The first ``batch`` pixels of ``order`` whose ``patch × patch`` blocks do not overlap."""
    if patch == 1:
        return order[:batch]
    taken: list[tuple[int, int]] = []
    chosen = []
    for flat in order.tolist():
        y, x = divmod(flat, width)
        if all(abs(y - ty) >= patch or abs(x - tx) >= patch for ty, tx in taken):
            taken.append((y, x))
            chosen.append(flat)
            if len(chosen) == batch:
                break
    return torch.tensor(chosen, dtype=torch.long)


def grow(canvas: torch.Tensor, known: torch.Tensor, matcher: Matcher, u: torch.Tensor,
         patch: int = 1, batch: int = 16) -> torch.Tensor:
    """Fill the unknown pixels of ``canvas`` (C×H×W) given ``known`` (H×W bool); returns it.

    ``known`` must have at least one pixel set; ``u`` holds H·W uniform numbers.
    """
    if not bool(known.any()):
        raise ValueError("grow() needs at least one known pixel to grow from")
    c, h, w = canvas.shape
    size = matcher.size
    r = size // 2
    hp, wp = h + 2 * r, w + 2 * r
    image = F.pad(canvas.double(), (r, r, r, r)).reshape(c, -1)  # zero padding: never known
    known_p = F.pad(known, (r, r, r, r)).flatten()
    known = known.clone()
    step = torch.arange(size) - r
    offsets = (step[:, None] * wp + step[None, :]).flatten()  # window, in padded flat indices
    block = torch.arange(patch) - patch // 2
    centre_block = ((block[:, None] + r) * size + block[None, :] + r).flatten()  # in a window
    dy, dx = block.repeat_interleave(patch), block.repeat(patch)
    while not bool(known.all()):
        chosen = spaced(frontier_order(known, size), w, patch, batch)
        ys, xs = chosen // w, chosen % w
        where = ((ys + r) * wp + xs + r)[:, None] + offsets  # (Q, size²)
        queries = image[:, where].permute(1, 0, 2).reshape(len(chosen), -1)
        match = matcher.choose(matcher.distances(queries, known_p[where]), u[chosen])
        values = matcher.windows[match].view(len(chosen), c, -1)[:, :, centre_block]
        ty, tx = ys[:, None] + dy, xs[:, None] + dx  # (Q, patch²) target pixels
        inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        ty, tx = ty.clamp(0, h - 1), tx.clamp(0, w - 1)
        write = inside & ~known[ty, tx]
        qi, bi = write.nonzero(as_tuple=True)
        flat = (ty[qi, bi] + r) * wp + tx[qi, bi] + r
        image[:, flat] = values[qi, :, bi].T
        known_p[flat] = True
        known[ty[qi, bi], tx[qi, bi]] = True
    return image.view(c, hp, wp)[:, r : r + h, r : r + w]
