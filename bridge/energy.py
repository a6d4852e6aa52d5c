r"""Sums of pairwise distances, the cost of the energy distance (docs/math.md §6), at any size.

:func:`bridge.metrics.energy_distance` needs :math:`S(x, y) = \sum_{i,j} |x_i - y_j|` for three
pairs of sets: ``n m`` distances, O(nm) time whatever is done, but never an ``n x m`` array here.
How a sum of ``n x m`` distances is computed is decided in one place, :func:`energy_backend`:

* ``"exact"`` while ``n m <=`` :data:`EXACT_PAIRS` (the sizes of a dense plan,
  :data:`bridge.ot_backend.DENSE_PLAN_BYTES` / 8): ``torch.cdist`` on exact differences in
  float64, in row blocks of at most :data:`BLOCK_PAIRS` distances; exact to rounding, and
  :math:`|x_i - x_i| = 0` exactly;
* ``"tiled"`` beyond: tiles of squared distances :math:`|x|^2 + |y|^2 - 2 x \cdot y`, one ``addmm``
  each, in float32 on points shifted by a common mean, with each tile's sum accumulated in float64.
  Several times faster than the exact blocks (benchmarks/README.md §21 measures both); the float32
  rounding of each distance is ~1e-7 relative, far below the sampling noise of an energy
  distance of this many points (of order :math:`E|X - X'| / n`).

Example:
    >>> import torch
    >>> x = torch.tensor([[0.0], [3.0]], dtype=torch.float64)
    >>> float(distance_sum(x, x + 1.0)), energy_backend(2, 2).name
    (8.0, 'exact')
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BACKENDS", "BLOCK_PAIRS", "EXACT_PAIRS", "TILE_BYTES", "EnergyBackend", "energy_backend", "distance_sum"]

#: The backends a distance sum can be asked for.
BACKENDS = ("auto", "exact", "tiled")
#: ``"auto"`` sums exactly while ``n m`` is at most this (2^25, the pairs of a dense plan of 256 MiB).
EXACT_PAIRS = 2**25
#: Distances held at once by the exact row blocks (32 MiB in float64).
BLOCK_PAIRS = 2**22
#: Bytes of one float32 tile of squared distances (1 MiB: it stays in cache).
TILE_BYTES = 2**20
#: Columns of a tile at most (the rest of the tile goes to rows).
TILE_COLS = 2048


@dataclass(frozen=True)
class EnergyBackend:
    """How a sum of ``n x m`` distances is computed, and why.

    Attributes:
        name: ``"exact"`` or ``"tiled"``.
        reason: one line: the size against :data:`EXACT_PAIRS`, or that it was asked for.
    """

    name: str
    reason: str


def energy_backend(n: int, m: int, *, backend: str = "auto") -> EnergyBackend:
    """The backend of a sum over ``n x m`` pairs: ``backend`` unless ``"auto"``, else ``"exact"``
    exactly when ``n m <=`` :data:`EXACT_PAIRS`.

    Example:
        >>> energy_backend(100_000, 100_000).reason
        '100000 x 100000 = 1e+10 pairs > 3.36e+07 (EXACT_PAIRS): float32 tiles of matrix products'
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if backend != "auto":
        return EnergyBackend(backend, f"backend={backend!r} was asked for")
    words = f"{n} x {m} = {n * m:.3g} pairs"
    if n * m <= EXACT_PAIRS:
        return EnergyBackend("exact", f"{words} <= {EXACT_PAIRS:.3g} (EXACT_PAIRS): float64 cdist in row blocks")
    return EnergyBackend("tiled", f"{words} > {EXACT_PAIRS:.3g} (EXACT_PAIRS): float32 tiles of matrix products")


def distance_sum(x: Tensor, y: Tensor, *, backend: str = "auto") -> Tensor:
    r""":math:`\sum_{i,j} |x_i - y_j|` over all pairs of rows of ``x (n, d)`` and ``y (m, d)``, a 0-d
    float64 tensor, by the backend :func:`energy_backend` picks for ``n x m``.

    Args:
        x, y: ``(n, d)`` and ``(m, d)`` float64 points on one device (validated by the caller).
        backend: ``"auto"``, ``"exact"`` or ``"tiled"``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(300, 3, generator=g), torch.randn(200, 3, generator=g)
        >>> exact = distance_sum(x.double(), y.double(), backend="exact")
        >>> tiled = distance_sum(x.double(), y.double(), backend="tiled")
        >>> bool(abs(tiled / exact - 1) < 1e-6)
        True
    """
    choice = energy_backend(x.shape[0], y.shape[0], backend=backend)
    if choice.name == "exact":
        return _exact_sum(x, y)
    return _tiled_sum(x, y)


def _exact_sum(x: Tensor, y: Tensor) -> Tensor:
    """Row blocks of at most :data:`BLOCK_PAIRS` distances from exact differences (no
    ``|x|^2 - 2xy + |y|^2`` cancellation, so ``d(x_i, x_i) = 0`` exactly)."""
    rows = max(1, BLOCK_PAIRS // y.shape[0])
    total = x.new_zeros((), dtype=torch.float64)
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows]
        total = total + torch.cdist(block, y, compute_mode="donot_use_mm_for_euclid_dist").sum()
    return total


def _tiled_sum(x: Tensor, y: Tensor) -> Tensor:
    """Tiles of ``rows x cols`` squared distances (at most :data:`TILE_BYTES` in float32), one
    ``addmm`` each, clamped at 0 (rounding) before the square root; tile sums in float64."""
    shift = torch.cat([x, y]).mean(0)  # a common shift leaves distances alone and shrinks the norms
    xs, ys = (x - shift).to(torch.float32), (y - shift).to(torch.float32)
    x_sq, y_sq, yt = (xs * xs).sum(1), (ys * ys).sum(1), ys.T * -2.0
    cols = max(1, min(ys.shape[0], TILE_COLS))
    rows = max(1, TILE_BYTES // (4 * cols))
    total = x.new_zeros((), dtype=torch.float64)
    for r0 in range(0, xs.shape[0], rows):
        xr, xr_sq = xs[r0 : r0 + rows], x_sq[r0 : r0 + rows, None]
        for c0 in range(0, ys.shape[0], cols):
            tile = torch.addmm(y_sq[c0 : c0 + cols], xr, yt[:, c0 : c0 + cols]).add_(xr_sq)
            total += tile.clamp_min_(0.0).sqrt_().sum(dtype=torch.float64)
    return total
