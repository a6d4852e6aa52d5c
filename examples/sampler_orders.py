"""Measure each sampler's convergence order with the exact fields of a Gaussian interpolant.

Problem: rho0 = N(0, 1) -> rho1 = N(2, 2) in 1-D, linear interpolant with gamma = sqrt(t(1-t)).
The exact b and s come from `bridge.reference` (docs/math.md §7).

* ODE: the flow map is known in closed form, X_1 = m_1 + sqrt(C_1 / C_0) (x_0 - m_0); the error
  is the largest deviation over a grid of starting points.
* SDE: the exact forward drift b + eps s is affine in x, so the scheme maps (x0, noises) affinely
  to X_1 and its law's mean and variance are computed exactly (no Monte Carlo); the error is
  |Var X_1 - C_1| (weak error).

The order is the least-squares slope of log(error) against log(step size).

    python examples/sampler_orders.py        # about 10 s on a CPU
"""

import argparse
import math

import torch

from bridge.interpolants import Linear
from bridge.reference import InterpolantOracle, gaussian
from bridge.samplers import RK4, Euler, EulerMaruyama, Heun, StochasticHeun, sample_ode, sample_sde

DT = torch.float64
M0, C0, M1, C1 = 0.0, 1.0, 2.0, 2.0


def slope(steps, errors):
    h = torch.tensor([1.0 / s for s in steps], dtype=DT).log()
    e = torch.tensor(errors, dtype=DT).log()
    hc = h - h.mean()
    return float((hc * (e - e.mean())).sum() / (hc * hc).sum())


def sde_variance(drift, eps, steps, solver):
    zero = torch.zeros(steps, 1, 1, dtype=DT)
    base = sample_sde(drift, torch.zeros(1, 1, dtype=DT), eps=eps, steps=steps, solver=solver, noise=zero).x[0, 0]
    gain_x = sample_sde(drift, torch.ones(1, 1, dtype=DT), eps=eps, steps=steps, solver=solver, noise=zero).x[0, 0]
    basis = torch.eye(steps, dtype=DT).unsqueeze(-1)
    gains = sample_sde(drift, torch.zeros(steps, 1, dtype=DT), eps=eps, steps=steps, solver=solver, noise=basis).x
    return float((gain_x - base) ** 2 * C0 + ((gains[:, 0] - base) ** 2).sum())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="accepted for CI; the full run is already ~10 s")
    p.parse_args()
    oracle = InterpolantOracle(Linear(), gaussian([M0], C0), gaussian([M1], C1))
    fields = oracle.fields()
    x0 = torch.linspace(-2.0, 2.0, 9, dtype=DT).unsqueeze(1)
    exact = M1 + math.sqrt(C1 / C0) * (x0 - M0)
    rows = []
    for solver, steps in ((Euler(), [8, 16, 32, 64]), (Heun(), [8, 16, 32, 64]), (RK4(), [32, 64, 128, 256])):
        err = [float((sample_ode(oracle.b, x0, steps=s, solver=solver).x - exact).abs().max()) for s in steps]
        rows.append((f"ODE {type(solver).__name__}", solver.order, steps, err, slope(steps, err)))
    for solver in (EulerMaruyama(), StochasticHeun()):
        for eps in (0.5, 2.0):
            steps = [16, 32, 64, 128]
            err = [abs(sde_variance(fields.forward_drift(eps), eps, s, solver) - C1) for s in steps]
            name = f"SDE {type(solver).__name__} eps={eps}"
            rows.append((name, solver.weak_order, steps, err, slope(steps, err)))
    print(f"{'sampler':<30s} {'declared':>8s} {'measured':>8s}   errors at steps")
    for name, order, steps, err, sl in rows:
        errs = "  ".join(f"{s}:{e:.2e}" for s, e in zip(steps, err))
        print(f"{name:<30s} {order:>8.1f} {sl:>8.2f}   {errs}")


if __name__ == "__main__":
    main()
