r"""Components the training samples do not support, switched off (docs/math.md §5.17).

A fitted :class:`~bridge.sb.MixturePotential` generates its targets as
:math:`x_1 \mid x_0 \sim \sum_k w_k(x_0)\, N(\mu_k + S_k x_0,\ r S_k)`. Over the ``n`` training
sources, component ``k`` accounts for

.. math:: n_k = \sum_{i=1}^n w_k(x_0^i)

of the ``n`` predicted targets (the :math:`n_k` sum to ``n``). A component with :math:`n_k < 1`
describes less than one training point: the data cannot place it, and its parameters keep the
values that optimiser noise left them (Adam moves a parameter at its full rate however small its
gradient). It still takes a share of :math:`x_1 \mid x_0` wherever
:math:`x_0^\top S_k x_0 + 2\mu_k^\top x_0` is large, and a far-off mean or a large :math:`S_k`
then spoils the conditional law at such sources. :func:`prune` switches these components off
(weight zero, the others renormalised); the solver does so on the potential it returns.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .potential import MixturePotential

__all__ = ["component_counts", "prune"]

#: Sources per block when summing the components' shares (``(block, K)`` at a time).
BLOCK = 8192


@torch.no_grad()
def component_counts(potential: MixturePotential, x0: Tensor) -> Tensor:
    r""":math:`n_k = \sum_i w_k(x_0^i)`, ``(K,)`` in float64: how many of the predicted targets of
    the sources ``x0`` ``(n, d)`` each component accounts for (switched-off components: 0).

    Example:
        >>> import torch
        >>> from bridge.sb import MixturePotential
        >>> pot = MixturePotential.from_components(torch.tensor([0.5, 0.5]), torch.tensor([[-1.0], [1.0]]),
        ...                                        torch.ones(2, 1), eps=0.5)
        >>> component_counts(pot, torch.zeros(4, 1)).tolist()
        [2.0, 2.0]
    """
    total = torch.zeros(potential.n_components, dtype=torch.float64, device=x0.device)
    for s in range(0, x0.shape[0], BLOCK):
        w = potential.conditional_log_weights(x0[s : s + BLOCK]).exp()
        total += w.sum(0).to(torch.float64)
    return total


@torch.no_grad()
def prune(potential: MixturePotential, x0: Tensor, min_count: float) -> dict:
    """Switch off, in place, the components of ``potential`` that account for fewer than
    ``min_count`` of the predicted targets of the training sources ``x0`` (:func:`component_counts`;
    the component with the largest count always stays). Returns the record: ``{"min_count",
    "switched_off", "kept", "count_off"}`` (``count_off``: the targets the switched-off
    components accounted for, together).

    Example:
        >>> import torch
        >>> from bridge.sb import MixturePotential
        >>> pot = MixturePotential.from_components(torch.tensor([0.999999, 1e-6]), torch.tensor([[0.0], [5.0]]),
        ...                                        torch.ones(2, 1), eps=0.5)
        >>> rec = prune(pot, torch.zeros(100, 1), 1.0)
        >>> rec["switched_off"], rec["kept"], pot.log_weights().exp().tolist()
        (1, 1, [1.0, 0.0])
    """
    counts = component_counts(potential, x0)
    off = (counts < min_count) & potential.active
    off[counts.argmax()] = False
    potential.active &= ~off
    return {
        "min_count": min_count,
        "switched_off": int(off.sum()),
        "kept": int(potential.active.sum()),
        "count_off": float(counts[off].sum()),
    }
