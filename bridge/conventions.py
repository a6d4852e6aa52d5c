r"""One place for the entropic-regularisation conventions (docs/math.md §8).

The Schrödinger bridge (SB) of docs/math.md §5 is, for the paper's ``eps > 0``,

.. math::
    \min_u \int_0^1 \mathbb E|u(t, X_t)|^2\,dt \quad\text{s.t.}\quad
    dX_t = u\,dt + \sqrt{2\epsilon}\,dW_t,\ X_0 \sim \rho_0,\ X_1 \sim \rho_1,

and its ``(x0, x1)`` law is the entropic OT plan

.. math::
    \pi^\star = \operatorname*{argmin}_{\pi \in \Pi(\rho_0, \rho_1)}
        \int |x - y|^2\,d\pi + 4\epsilon\,\mathrm{KL}(\pi \,|\, \rho_0 \otimes \rho_1)
    = \operatorname*{argmin}_{\pi \in \Pi(\rho_0, \rho_1)}
        \int \tfrac12 |x - y|^2\,d\pi + 2\epsilon\,\mathrm{KL}(\pi \,|\, \rho_0 \otimes \rho_1).

The same number appears under four names:

=============================== =================== ====================================================
name                            value               where it is used
=============================== =================== ====================================================
``eps`` (the paper's)           :math:`\epsilon`    diffusion ``sqrt(2 eps) dW`` (docs/math.md §3), ``--eps``
reference variance rate ``r``   :math:`2\epsilon`   docs/math.md §7 closed forms; Gushchin et al.'s benchmark ε
POT ``reg``                     :math:`4\epsilon`   ``ot.sinkhorn(a, b, ot.dist(x, y), reg)``
geomloss ``blur``               :math:`\sqrt{2\epsilon}` ``SamplesLoss("sinkhorn", p=2, blur=...)``
=============================== =================== ====================================================

POT's ``ot.dist`` is the squared Euclidean cost :math:`|x-y|^2`; geomloss's ``p=2`` cost is
:math:`|x-y|^2/2` with KL weight ``blur**2``. The two problems are the same up to a factor 2 in
the objective: same plan, POT value = 2 x geomloss value, POT potentials = 2 x geomloss
potentials (up to the additive constant and the ``reg log a`` shift of POT's convention).

The SB's relative entropy to the reference process (Girsanov, same initial law):

.. math:: \mathrm{KL}(P_{SB} \,\|\, W^{2\epsilon}) = \frac{1}{4\epsilon} \int_0^1 \mathbb E|u(t, X_t)|^2\,dt.

Example:
    >>> s = EntropicSettings.from_eps(0.5)
    >>> s.r, s.pot_reg, s.geomloss_blur
    (1.0, 2.0, 1.0)
    >>> EntropicSettings.from_pot_reg(2.0) == s
    True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

__all__ = [
    "EntropicSettings",
    "check_eps",
    "resolve_eps",
    "reference_variance",
    "eps_from_reference_variance",
    "pot_reg",
    "eps_from_pot_reg",
    "geomloss_blur",
    "eps_from_geomloss_blur",
    "sb_kl_from_kinetic_energy",
    "kinetic_energy_from_sb_kl",
]


def _positive(value, name: str) -> float:
    """A finite number > 0 as a Python float; TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if hasattr(value, "dim") and value.dim() == 0 and value.is_floating_point():  # 0-d tensor
            value = float(value)
        else:
            raise TypeError(f"{name}: expected a number > 0, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
    return v


def check_eps(eps) -> float:
    """Validate the paper's ``eps`` (finite, > 0) and return it as a float.

    Example:
        >>> check_eps(0.5)
        0.5
    """
    return _positive(eps, "eps")


def resolve_eps(*, eps=None, r=None) -> float:
    """The paper's ``eps`` from exactly one of ``eps`` or the reference variance rate ``r = 2 eps``.

    Used by constructors that accept either notation (docs/math.md §3 writes eps, §7 writes r).

    Raises:
        ValueError: both or neither given, or the value is not finite and > 0.

    Example:
        >>> resolve_eps(r=1.0), resolve_eps(eps=0.5)
        (0.5, 0.5)
    """
    if (eps is None) == (r is None):
        raise ValueError(f"eps, r: expected exactly one of eps or r = 2 eps, got eps={eps!r}, r={r!r}")
    return check_eps(eps) if eps is not None else _positive(r, "r") / 2.0


def reference_variance(eps) -> float:
    r"""Variance rate of the reference Brownian motion :math:`\sqrt{2\epsilon}W`: :math:`r = 2\epsilon`.

    Example:
        >>> reference_variance(0.5)
        1.0
    """
    return 2.0 * check_eps(eps)


def eps_from_reference_variance(r) -> float:
    """Inverse of :func:`reference_variance`: ``eps = r / 2``.

    Example:
        >>> eps_from_reference_variance(1.0)
        0.5
    """
    return _positive(r, "r") / 2.0


def pot_reg(eps) -> float:
    r"""POT's ``reg`` for the SB with the paper's ``eps``, on the cost ``ot.dist`` = :math:`|x-y|^2`:
    ``reg = 4 eps`` (docs/math.md §5).

    Example:
        >>> pot_reg(0.5)
        2.0
    """
    return 4.0 * check_eps(eps)


def eps_from_pot_reg(reg) -> float:
    """Inverse of :func:`pot_reg`: ``eps = reg / 4``.

    Example:
        >>> eps_from_pot_reg(2.0)
        0.5
    """
    return _positive(reg, "reg") / 4.0


def geomloss_blur(eps) -> float:
    r"""geomloss's ``blur`` for ``SamplesLoss("sinkhorn", p=2)``: :math:`\sqrt{2\epsilon}`, so that the
    KL weight ``blur**2 = 2 eps`` goes with geomloss's cost :math:`|x-y|^2/2` (docs/math.md §5).

    Example:
        >>> geomloss_blur(0.5)
        1.0
    """
    return math.sqrt(2.0 * check_eps(eps))


def eps_from_geomloss_blur(blur) -> float:
    """Inverse of :func:`geomloss_blur`: ``eps = blur**2 / 2``.

    Example:
        >>> eps_from_geomloss_blur(1.0)
        0.5
    """
    return _positive(blur, "blur") ** 2 / 2.0


def sb_kl_from_kinetic_energy(kinetic_energy, eps) -> float:
    r"""Relative entropy of a controlled process to the reference, from its kinetic energy:

    .. math:: \mathrm{KL}(P \,\|\, W^{2\epsilon}) = \frac{1}{4\epsilon}\int_0^1 \mathbb E|u(t, X_t)|^2\,dt

    for :math:`dX = u\,dt + \sqrt{2\epsilon}\,dW` and the reference :math:`dX = \sqrt{2\epsilon}\,dW`,
    both started from :math:`\rho_0` (Girsanov; docs/math.md §5.9 (d)).

    Args:
        kinetic_energy: :math:`\int_0^1 \mathbb E|u|^2 dt`, a finite number ``>= 0``.
        eps: the paper's eps.

    Example:
        >>> sb_kl_from_kinetic_energy(2.0, 0.5)
        1.0
    """
    if isinstance(kinetic_energy, bool) or not isinstance(kinetic_energy, numbers.Real):
        raise TypeError(f"kinetic_energy: expected a number >= 0, got {type(kinetic_energy).__name__}")
    k = float(kinetic_energy)
    if not math.isfinite(k) or k < 0:
        raise ValueError(f"kinetic_energy: expected a finite number >= 0, got {k!r}")
    return k / (4.0 * check_eps(eps))


def kinetic_energy_from_sb_kl(kl, eps) -> float:
    r"""Inverse of :func:`sb_kl_from_kinetic_energy`: :math:`\int \mathbb E|u|^2 dt = 4\epsilon\,\mathrm{KL}`.

    Example:
        >>> kinetic_energy_from_sb_kl(1.0, 0.5)
        2.0
    """
    if isinstance(kl, bool) or not isinstance(kl, numbers.Real):
        raise TypeError(f"kl: expected a number >= 0, got {type(kl).__name__}")
    v = float(kl)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"kl: expected a finite number >= 0, got {v!r}")
    return 4.0 * check_eps(eps) * v


@dataclass(frozen=True)
class EntropicSettings:
    r"""The four names of one entropic regularisation (see the module table).

    Attributes:
        eps: the paper's eps (diffusion :math:`\sqrt{2\epsilon}\,dW`).
        r: reference variance rate ``2 eps`` (docs/math.md §7).
        pot_reg: POT ``reg = 4 eps`` on ``ot.dist`` (squared Euclidean).
        geomloss_blur: ``sqrt(2 eps)`` for ``SamplesLoss("sinkhorn", p=2, blur=...)``.
        geomloss_eps: geomloss's temperature ``blur**2 = 2 eps`` (cost :math:`|x-y|^2/2`).

    Build it with one of the ``from_*`` constructors; :meth:`as_dict` gives the record written
    to run reports.

    Example:
        >>> EntropicSettings.from_geomloss_blur(1.0).as_dict()
        {'eps': 0.5, 'r': 1.0, 'pot_reg': 2.0, 'geomloss_blur': 1.0, 'geomloss_eps': 1.0}
    """

    eps: float
    r: float
    pot_reg: float
    geomloss_blur: float
    geomloss_eps: float

    @classmethod
    def from_eps(cls, eps) -> EntropicSettings:
        """From the paper's eps.

        Example:
            >>> EntropicSettings.from_eps(0.05).pot_reg
            0.2
        """
        e = check_eps(eps)
        return cls(eps=e, r=2.0 * e, pot_reg=4.0 * e, geomloss_blur=math.sqrt(2.0 * e), geomloss_eps=2.0 * e)

    @classmethod
    def from_reference_variance(cls, r) -> EntropicSettings:
        """From the reference variance rate ``r = 2 eps``.

        Example:
            >>> EntropicSettings.from_reference_variance(1.0).eps
            0.5
        """
        return cls.from_eps(eps_from_reference_variance(r))

    @classmethod
    def from_pot_reg(cls, reg) -> EntropicSettings:
        """From POT's ``reg`` on ``ot.dist`` (``eps = reg / 4``).

        Example:
            >>> EntropicSettings.from_pot_reg(4.0).eps
            1.0
        """
        return cls.from_eps(eps_from_pot_reg(reg))

    @classmethod
    def from_geomloss_blur(cls, blur) -> EntropicSettings:
        """From geomloss's ``blur`` (``eps = blur**2 / 2``).

        Example:
            >>> EntropicSettings.from_geomloss_blur(2.0).eps
            2.0
        """
        return cls.from_eps(eps_from_geomloss_blur(blur))

    def as_dict(self) -> dict:
        """The five numbers as a JSON-ready dict."""
        return asdict(self)
