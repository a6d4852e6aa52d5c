"""Interpolants: coefficient schedules and the families of docs/math.md §1."""

from .base import Interpolant, InterpolantSample, SpatiallyLinearInterpolant, bcast
from .families import EncoderDecoder, Linear, Mirror, OneSidedLinear, OneSidedTrig, OneSidedVP, Trig
from .schedules import (
    BrownianGamma,
    Constant,
    CosDown,
    FunctionGamma,
    FunctionSchedule,
    GammaSchedule,
    LinearDown,
    LinearUp,
    QuadraticGamma,
    Schedule,
    SigmoidGamma,
    SinSquaredGamma,
    SinUp,
    SqrtOneMinusSquare,
    ZeroGamma,
    time_derivative,
)

__all__ = [
    "Interpolant",
    "InterpolantSample",
    "SpatiallyLinearInterpolant",
    "bcast",
    "Linear",
    "Trig",
    "EncoderDecoder",
    "OneSidedLinear",
    "OneSidedTrig",
    "OneSidedVP",
    "Mirror",
    "Schedule",
    "FunctionSchedule",
    "Constant",
    "LinearDown",
    "LinearUp",
    "CosDown",
    "SinUp",
    "SqrtOneMinusSquare",
    "GammaSchedule",
    "BrownianGamma",
    "QuadraticGamma",
    "SinSquaredGamma",
    "SigmoidGamma",
    "ZeroGamma",
    "FunctionGamma",
    "time_derivative",
]

from .learnable import FourierGamma, FourierInterpolant, NeuralInterpolant  # noqa: E402
from .registry import GAMMAS, INTERPOLANTS, make_interpolant  # noqa: E402

__all__ += ["FourierInterpolant", "NeuralInterpolant", "FourierGamma", "GAMMAS", "INTERPOLANTS", "make_interpolant"]
