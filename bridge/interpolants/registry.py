"""Interpolants and latent-noise schedules by name (the names ``bridge fit`` takes and records).

:data:`GAMMAS` maps a name to a factory ``a -> gamma`` (``a`` scales the schedules that have a
scale and is ignored by the others); :data:`INTERPOLANTS` maps a name to a factory
``gamma -> interpolant`` (families with a fixed gamma ignore it). :func:`make_interpolant`
composes the two, so a run's three recorded names rebuild its interpolant.

Example:
    >>> from bridge.interpolants import make_interpolant
    >>> make_interpolant("linear", "quadratic", 2.0)
    Linear(gamma=QuadraticGamma(a=2.0))
    >>> make_interpolant("one-sided-trig")
    OneSidedTrig()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from .base import Interpolant
from .families import EncoderDecoder, Linear, Mirror, OneSidedLinear, OneSidedTrig, OneSidedVP, Trig
from .schedules import BrownianGamma, GammaSchedule, QuadraticGamma, SigmoidGamma, SinSquaredGamma, ZeroGamma

__all__ = ["GAMMAS", "INTERPOLANTS", "make_interpolant"]

#: Latent-noise schedules by name: ``name -> factory(a)``.
GAMMAS: Mapping[str, Callable[[float], GammaSchedule]] = MappingProxyType(
    {
        "brownian": lambda a: BrownianGamma(a=a),  # sqrt(a t(1-t))
        "quadratic": lambda a: QuadraticGamma(a=a),  # a t(1-t)
        "sin2": lambda a: SinSquaredGamma(),  # sin^2(pi t)
        "sigmoid": lambda a: SigmoidGamma(),
        "zero": lambda a: ZeroGamma(),
    }
)

#: Interpolant families by name: ``name -> factory(gamma)``.
INTERPOLANTS: Mapping[str, Callable[[GammaSchedule], Interpolant]] = MappingProxyType(
    {
        "linear": lambda g: Linear(g),
        "trig": lambda g: Trig(g),
        "encoder-decoder": lambda g: EncoderDecoder(),
        "one-sided-linear": lambda g: OneSidedLinear(),
        "one-sided-trig": lambda g: OneSidedTrig(),
        "one-sided-vp": lambda g: OneSidedVP(),
        "mirror": lambda g: Mirror(g),
    }
)


def make_interpolant(name: str, gamma: str = "brownian", gamma_scale: float = 1.0) -> Interpolant:
    """The interpolant ``name`` with the latent noise ``gamma`` of scale ``gamma_scale``.

    Args:
        name: a key of :data:`INTERPOLANTS`, e.g. ``"linear"``.
        gamma: a key of :data:`GAMMAS`; one-sided families have no latent noise and use
            ``"zero"`` whatever is given.
        gamma_scale: the ``a`` of the scaled schedules (``"brownian"``, ``"quadratic"``).

    Raises:
        ValueError: an unknown ``name`` or ``gamma``.
    """
    if name not in INTERPOLANTS:
        raise ValueError(f"interpolant: expected one of {', '.join(INTERPOLANTS)}, got {name!r}")
    if gamma not in GAMMAS:
        raise ValueError(f"gamma: expected one of {', '.join(GAMMAS)}, got {gamma!r}")
    if name.startswith("one-sided"):
        gamma = "zero"
    return INTERPOLANTS[name](GAMMAS[gamma](gamma_scale))
