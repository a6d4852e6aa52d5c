r"""Divergence of a field :math:`f(t, x)`: exact, or Hutchinson's trace estimator (docs/math.md §4).

Both are sums of quadratic forms of the Jacobian :math:`J = \partial f / \partial x`:

.. math::
    \nabla\cdot f = \operatorname{tr} J = \sum_{i=1}^d e_i^\top J e_i
    \qquad\text{and}\qquad
    \nabla\cdot f = \mathbb E_\xi[\xi^\top J \xi]\ \ (\mathbb E[\xi\xi^\top] = I).

Each form :math:`v^\top J v` needs one vector-Jacobian product :math:`v^\top J`. For ``K``
vectors per point, the ``n`` points are replicated ``K`` times and pushed through ``f`` in one
batched forward and one backward pass (in chunks of at most ``max_rows`` rows), so the field
must act row by row, as every field in ``bridge`` does (no batch statistics across rows).

:class:`Exact` costs ``d`` forms per point; :class:`Hutchinson` costs ``probes`` and reports a
standard error. Works in any floating dtype and on any device (that of ``x``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Exact", "Hutchinson", "DivergenceResult", "divergence", "DEFAULT_MAX_ROWS", "PROBE_DISTRIBUTIONS"]

Field = Callable[[Tensor, Tensor], Tensor]

#: Rows (points x vectors) per batched forward/backward pass. With an MLP of width 128 this
#: keeps the activations of one pass near 100 MB in float32; lower it for wide networks.
DEFAULT_MAX_ROWS = 2**16

#: The laws of Hutchinson's probe vectors.
PROBE_DISTRIBUTIONS = ("rademacher", "gaussian")


def _check_max_rows(max_rows) -> int:
    if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < 1:
        raise ValueError(f"max_rows: expected a positive integer, got {max_rows!r}")
    return int(max_rows)


def _forms(f: Field, t: Tensor, x: Tensor, vectors, K: int, *, create_graph: bool, max_rows: int):
    r"""``q[k, i] = v_{k,i}^T J(t_i, x_i) v_{k,i}`` for ``k < K`` and ``f(t, x)``.

    ``vectors(k0, k1)`` returns the vectors ``v_{k0:k1}``, shape ``(k1 - k0, n, d)``.
    """
    n, d = x.shape
    chunk = max(1, max_rows // n)
    out, qs = None, []
    for k0 in range(0, K, chunk):
        v = vectors(k0, min(K, k0 + chunk))
        kc = v.shape[0]
        with torch.enable_grad():
            xr = (x if create_graph else x.detach()).repeat(kc, 1)
            if not xr.requires_grad:
                xr.requires_grad_(True)
            tr = (t if create_graph else t.detach()).repeat(kc)
            y = f(tr, xr)
            if not isinstance(y, Tensor) or y.shape != xr.shape:
                got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ValueError(f"f: expected output of shape (n, d) = {tuple(xr.shape)}, got {got}")
            if not y.requires_grad:
                raise ValueError(
                    "f: its output carries no autograd graph to x (computed under torch.no_grad() or detached?); "
                    "the divergence needs f differentiable in x"
                )
            (g,) = torch.autograd.grad(y, xr, grad_outputs=v.reshape(-1, d), create_graph=create_graph)
        qs.append((g.reshape(kc, n, d) * v).sum(-1))
        if out is None:
            out = y[:n] if create_graph else y[:n].detach()
    return torch.cat(qs), out


class DivergenceEstimator:
    """Base class. ``estimate`` returns ``(samples, f(t, x))`` with ``samples`` of shape
    ``(A, n)`` whose mean over the first axis estimates the divergence (``A = 1`` if exact)."""

    exact: bool = False
    max_rows: int = DEFAULT_MAX_ROWS

    def draw(self, n: int, d: int, *, dtype, device, generator: torch.Generator | None) -> Tensor | None:
        """Random probes for ``n`` points in dimension ``d`` (None for the exact method)."""
        return None

    def estimate(self, f: Field, t: Tensor, x: Tensor, probes: Tensor | None, *, create_graph: bool = False):
        raise NotImplementedError


class Exact(DivergenceEstimator):
    r"""Exact divergence :math:`\sum_i e_i^\top J e_i`: ``d`` vector-Jacobian products per point.

    Args:
        max_rows: rows (points x coordinates) per batched pass, see :data:`DEFAULT_MAX_ROWS`.

    Example:
        >>> import torch
        >>> x = torch.randn(3, 4, dtype=torch.float64)
        >>> divergence(lambda t, x: 2.0 * x, torch.zeros(3), x, estimator=Exact()).value
        tensor([8., 8., 8.], dtype=torch.float64)
    """

    exact = True

    def __init__(self, *, max_rows: int = DEFAULT_MAX_ROWS):
        self.max_rows = _check_max_rows(max_rows)

    def __repr__(self) -> str:
        return f"Exact(max_rows={self.max_rows})"

    def estimate(self, f, t, x, probes=None, *, create_graph=False):
        n, d = x.shape

        def unit_vectors(k0, k1):
            v = x.new_zeros(k1 - k0, n, d)
            idx = torch.arange(k0, k1, device=x.device)
            v[torch.arange(k1 - k0, device=x.device), :, idx] = 1.0
            return v

        q, out = _forms(f, t, x, unit_vectors, d, create_graph=create_graph, max_rows=self.max_rows)
        return q.sum(0, keepdim=True), out


class Hutchinson(DivergenceEstimator):
    r"""Hutchinson's estimator :math:`\frac1P\sum_{p=1}^P \xi_p^\top J \xi_p`, probes
    :math:`\xi_p` i.i.d. with :math:`\mathbb E[\xi\xi^\top] = I`.

    Unbiased. For a fixed Jacobian, one probe has variance
    :math:`\tfrac12\|J + J^\top\|_F^2 - 2\sum_i J_{ii}^2` (Rademacher, the smaller) or
    :math:`\tfrac12\|J + J^\top\|_F^2` (Gaussian); the mean of ``P`` probes has that over ``P``.
    The standard error is the sample standard deviation of the ``P`` forms over
    :math:`\sqrt P` (NaN for ``P = 1``).

    Args:
        probes: probes per point, ``P >= 1``.
        distribution: ``"rademacher"`` (entries +-1) or ``"gaussian"`` (N(0, 1)).
        max_rows: rows (points x probes) per batched pass, see :data:`DEFAULT_MAX_ROWS`.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2, 3, dtype=torch.float64)
        >>> r = divergence(lambda t, x: 2.0 * x, torch.zeros(2), x, estimator=Hutchinson(4), generator=g)
        >>> r.value, r.stderr  # Rademacher is exact for a diagonal Jacobian
        (tensor([6., 6.], dtype=torch.float64), tensor([0., 0.], dtype=torch.float64))
    """

    def __init__(self, probes: int = 1, *, distribution: str = "rademacher", max_rows: int = DEFAULT_MAX_ROWS):
        if isinstance(probes, bool) or not isinstance(probes, numbers.Integral) or probes < 1:
            raise ValueError(f"probes: expected a positive integer, got {probes!r}")
        if distribution not in PROBE_DISTRIBUTIONS:
            raise ValueError(f"distribution: expected one of {', '.join(PROBE_DISTRIBUTIONS)}, got {distribution!r}")
        self.probes, self.distribution = int(probes), distribution
        self.max_rows = _check_max_rows(max_rows)

    def __repr__(self) -> str:
        return f"Hutchinson(probes={self.probes}, distribution={self.distribution!r})"

    def draw(self, n, d, *, dtype, device, generator=None):
        shape = (self.probes, n, d)
        if self.distribution == "gaussian":
            return torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return torch.randint(0, 2, shape, generator=generator, dtype=dtype, device=device).mul_(2.0).sub_(1.0)

    def estimate(self, f, t, x, probes, *, create_graph=False):
        if probes is None:
            raise ValueError("probes: Hutchinson needs probe vectors (draw them with .draw)")
        return _forms(
            f, t, x, lambda k0, k1: probes[k0:k1], probes.shape[0], create_graph=create_graph, max_rows=self.max_rows
        )


def _check_estimator(estimator) -> DivergenceEstimator:
    if estimator is None:
        return Exact()
    if isinstance(estimator, type):
        raise TypeError(f"estimator: expected an instance such as {estimator.__name__}(), got the class itself")
    if not isinstance(estimator, DivergenceEstimator):
        raise TypeError(f"estimator: expected Exact() or Hutchinson(...), got {type(estimator).__name__}")
    return estimator


def _check_generator(generator, x: Tensor) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise ValueError(f"generator: on device {generator.device}, but x is on {x.device}")


def _mean_and_stderr(samples: Tensor, exact: bool) -> tuple[Tensor, Tensor]:
    """Mean over the first axis and its standard error (0 if exact, NaN from one sample)."""
    mean = samples.mean(0)
    if exact:
        return mean, torch.zeros_like(mean)
    if samples.shape[0] < 2:
        return mean, torch.full_like(mean, math.nan)
    return mean, samples.std(0) / math.sqrt(samples.shape[0])


@dataclass
class DivergenceResult:
    """Output of :func:`divergence`.

    Attributes:
        value: the divergence (or its estimate) per point, ``(n,)``.
        stderr: its Monte-Carlo standard error, ``(n,)``: 0 for :class:`Exact`, NaN for one probe.
        per_probe: the ``P`` quadratic forms ``xi_p^T J xi_p``, ``(P, n)``, or None if exact.
        output: ``f(t, x)``, ``(n, d)``, from the same forward pass.
    """

    value: Tensor
    stderr: Tensor
    per_probe: Tensor | None
    output: Tensor


def divergence(
    f: Field,
    t,
    x: Tensor,
    *,
    estimator: DivergenceEstimator | None = None,
    generator: torch.Generator | None = None,
    create_graph: bool = False,
) -> DivergenceResult:
    r"""Divergence :math:`\nabla_x\cdot f(t, x) = \operatorname{tr}\partial_x f(t, x)` per point
    (docs/math.md §4; the integrand of SI 2.53).

    Args:
        f: field ``f(t, x)``, ``t`` of shape ``(n,)``, ``x`` and output of shape ``(n, d)``,
            differentiable in ``x``, acting row by row.
        t: times, ``(n,)`` tensor or a number.
        x: points ``(n, d)``, floating point.
        estimator: :class:`Exact` (default) or :class:`Hutchinson`.
        generator: random generator for the probes (on the device of ``x``).
        create_graph: keep the graph, so that the result can be differentiated (in ``x``, ``t``
            or the parameters of ``f``); otherwise the results are detached.

    Returns:
        :class:`DivergenceResult`.

    Example:
        >>> import torch
        >>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
        >>> divergence(lambda t, x: x @ A.T, 0.5, torch.ones(1, 2, dtype=torch.float64)).value
        tensor([5.], dtype=torch.float64)
    """
    if not callable(f):
        raise TypeError(f"f: expected a callable f(t, x), got {type(f).__name__}")
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 2:
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x: expected a floating-point tensor of shape (n, d), got {got}")
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        t = x.new_full((x.shape[0],), float(t))
    if not isinstance(t, Tensor) or t.shape != (x.shape[0],):
        got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"t: expected a number or a tensor of shape ({x.shape[0]},), got {got}")
    estimator = _check_estimator(estimator)
    _check_generator(generator, x)
    t = t.to(dtype=x.dtype, device=x.device)
    probes = estimator.draw(*x.shape, dtype=x.dtype, device=x.device, generator=generator)
    samples, out = estimator.estimate(f, t, x, probes, create_graph=create_graph)
    value, stderr = _mean_and_stderr(samples, estimator.exact)
    return DivergenceResult(value=value, stderr=stderr, per_probe=None if estimator.exact else samples, output=out)
