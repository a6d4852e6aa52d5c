r"""``u(t, x) = grad_x V(t, x)``: a vector field as the gradient of a scalar network.

The Schrödinger bridge's drift is such a field, ``u = 2 eps grad log phi_t`` with the forward
Schrödinger potential ``phi_t`` (docs/math.md §5, SI Thm 3.10), so a solver may restrict its drift to
gradients without excluding the solution (see :class:`bridge.sb.SBConfig`'s ``gradient_drift``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GradientField"]


class GradientField(nn.Module):
    r"""The field :math:`\nabla_x V(t, x)` of a scalar network ``V(t, x) -> (n, 1)``.

    The gradient is taken by autograd. When the caller records gradients (training), it is built
    with ``create_graph=True``, so that a loss of the field can be differentiated with respect to
    ``V``'s weights and to ``x`` (double backward); under :func:`torch.no_grad` (sampling) it is
    computed without a graph and returned detached (by :func:`torch.func.grad` inside
    :func:`torch.compile`, which traces it into the compiled graph).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Quad(nn.Module):  # V = |x|^2 / 2, so grad V = x
        ...     def forward(self, t, x):
        ...         return 0.5 * x.pow(2).sum(-1, keepdim=True)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(GradientField(Quad())(torch.rand(4), x), x)
        True
    """

    def __init__(self, potential: nn.Module):
        super().__init__()
        self.potential = potential

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        create = torch.is_grad_enabled()
        if not create and torch.compiler.is_compiling():
            # torch.compile traces torch.func.grad into one graph; torch.autograd.grad breaks it
            return torch.func.grad(lambda xx: self.potential(t, xx).sum())(x)
        with torch.enable_grad():
            xg = x if (create and x.requires_grad) else x.detach().requires_grad_(True)
            v = self.potential(t, xg)
            if v.dim() != 2 or v.shape != (x.shape[0], 1):
                raise ValueError(f"potential: expected an output of shape ({x.shape[0]}, 1), got {tuple(v.shape)}")
            (g,) = torch.autograd.grad(v.sum(), xg, create_graph=create)
        return g if create else g.detach()
