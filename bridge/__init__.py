"""bridge: Schrödinger bridges and generative models with stochastic interpolants.

The pieces compose like the paper (docs/math.md §1-§3):

    >>> import torch
    >>> from bridge import Linear, BrownianGamma, loss_b
    >>> interp = Linear(gamma=BrownianGamma())
    >>> g = torch.Generator().manual_seed(0)
    >>> x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 3
    >>> loss_b(lambda t, x: x1.mean(0) - x0.mean(0) + 0 * x, interp, x0, x1, generator=g).shape
    torch.Size([64])
"""

from .fields import Fields, b_from_v_s, backward_drift, eta_from_s, forward_drift, s_from_eta
from .interpolants import (
    BrownianGamma,
    EncoderDecoder,
    FunctionGamma,
    FunctionSchedule,
    Interpolant,
    Linear,
    Mirror,
    OneSidedLinear,
    OneSidedTrig,
    OneSidedVP,
    QuadraticGamma,
    SigmoidGamma,
    SinSquaredGamma,
    SpatiallyLinearInterpolant,
    Trig,
    ZeroGamma,
)
from .likelihood import (
    backward_ito_log_density,
    feynman_kac_log_density,
    kl_bound_report,
    ode_log_density,
    ode_sample_log_density,
)
from .losses import loss_b, loss_eta, loss_s, loss_v
from .models import MLP
from .samplers import RK4, RK45, Euler, EulerMaruyama, Heun, StochasticHeun, sample_ode, sample_sde
from .sb import BridgeResult, SBConfig, solve_bridge
from .train import TrainResult, train_fields

__version__ = "0.1.0"

__all__ = [
    # the Schrödinger bridge (docs/math.md §5)
    "solve_bridge",
    "SBConfig",
    "BridgeResult",
    # likelihood (docs/math.md §4)
    "ode_log_density",
    "ode_sample_log_density",
    "feynman_kac_log_density",
    "backward_ito_log_density",
    "kl_bound_report",
    # interpolants (docs/math.md §1)
    "Interpolant",
    "SpatiallyLinearInterpolant",
    "Linear",
    "Trig",
    "EncoderDecoder",
    "OneSidedLinear",
    "OneSidedTrig",
    "OneSidedVP",
    "Mirror",
    "BrownianGamma",
    "QuadraticGamma",
    "SinSquaredGamma",
    "SigmoidGamma",
    "ZeroGamma",
    "FunctionGamma",
    "FunctionSchedule",
    # losses and fields (docs/math.md §2)
    "loss_b",
    "loss_s",
    "loss_eta",
    "loss_v",
    "Fields",
    "b_from_v_s",
    "s_from_eta",
    "eta_from_s",
    "forward_drift",
    "backward_drift",
    # samplers (docs/math.md §3)
    "sample_ode",
    "sample_sde",
    "Euler",
    "Heun",
    "RK4",
    "RK45",
    "EulerMaruyama",
    "StochasticHeun",
    # models and training
    "MLP",
    "train_fields",
    "TrainResult",
]
