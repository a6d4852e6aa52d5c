"""Compute the likelihood of held-out data under a trained model, and compare with the truth.

Target: a 2-D Gaussian mixture (three modes) whose exact log-density is known; source N(0, I).
Learns ``b`` and ``s`` of the linear interpolant with ``gamma = sqrt(t(1-t))`` (docs/math.md §2), then
estimates the negative log-likelihood of held-out target points (docs/math.md §4):

* the ODE model (eps = 0), ``log rho^(1, x) = log rho0(X_0) - int div b dt`` integrated backward
  (SI 2.52), with the exact divergence (d = 2 is cheap) and with Hutchinson probes;
* the SDE model with the backward-Itô estimator (eps = 0.5) and with the Feynman–Kac estimator
  and its Jensen bound (SI 2.65-2.67) at eps = 0.25: Feynman–Kac's path weights degenerate at
  larger eps on multimodal targets (see ``paper_figures/likelihood.py``);

and prints them next to the exact cross-entropy ``E[-log rho1(x)]`` of the same points.

    python examples/likelihood.py            # ~1 min on one CPU core
    python examples/likelihood.py --quick    # a few seconds (CI)

The same from the command line: ``bridge likelihood --run RUN --data X.npy --out DIR``.
"""

import argparse
import time

import torch

from bridge import BrownianGamma, Linear, train_fields
from bridge.likelihood import Exact, Hutchinson, backward_ito_log_density, feynman_kac_log_density, ode_log_density
from bridge.reference import GaussianMixture, standard_normal
from bridge.samplers import RK4


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run (CI)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    target = GaussianMixture(
        weights=torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
        means=torch.tensor([[2.0, 0.0], [-1.5, 1.5], [-1.0, -2.0]], dtype=torch.float64),
        covs=torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.4]], [[0.25, -0.1], [-0.1, 0.25]]]).double(),
    )
    source = standard_normal(2)
    n, n_test = (4000, 200) if args.quick else (10000, 300)
    steps = 200 if args.quick else 1000
    x0 = source.sample(n, generator=g).float()
    x1 = target.sample(n, generator=g).float()
    test = target.sample(n_test, generator=g).float()

    fit = train_fields(
        Linear(gamma=BrownianGamma()),
        x0,
        x1,
        fields=("b", "s"),
        steps=steps,
        hidden=128,
        depth=3,
        seed=args.seed,
        log_every=max(1, steps // 4),
        progress=print,
    )
    truth = float(-target.log_prob(test.double()).mean())
    se_truth = float(target.log_prob(test.double()).std() / n_test**0.5)

    log_rho0 = lambda x: source.log_prob(x.double()).to(x.dtype)  # noqa: E731
    t0 = time.perf_counter()
    rows = []
    for name, div in [("ODE, exact divergence", Exact()), ("ODE, Hutchinson x4", Hutchinson(4))]:
        r = ode_log_density(
            fit.fields.drift,
            test,
            log_rho0=log_rho0,
            divergence=div,
            solver=RK4(),
            steps=20 if args.quick else 50,
            generator=g,
        )
        rows.append((name, float(-r.log_density.mean()), float(r.log_density.std() / n_test**0.5)))
    paths, sde_steps = (8, 50) if args.quick else (8, 100)
    ito = backward_ito_log_density(
        fit.fields.drift, fit.fields.score, test, eps=0.5, log_rho0=log_rho0, paths=paths, steps=sde_steps, generator=g
    )
    rows.append(
        ("SDE eps=0.5, backward Ito", float(-ito.log_density.mean()), float(ito.log_density.std() / n_test**0.5))
    )
    fk = feynman_kac_log_density(
        fit.fields.drift,
        fit.fields.score,
        test,
        eps=0.25,
        log_rho0=log_rho0,
        paths=2 * paths,
        steps=sde_steps,
        generator=g,
    )
    rows.append(("SDE eps=0.25, Feynman-Kac", float(-fk.log_density.mean()), float(fk.log_density.std() / n_test**0.5)))
    rows.append(("  its Jensen bound (>=)", float(-fk.jensen.mean()), float(fk.jensen.std() / n_test**0.5)))
    print(f"\nNLL of {n_test} held-out target points (nats; +- standard error over points):")
    for name, v, se in rows:
        print(f"  {name:<26} {v:7.3f} +- {se:.3f}   (model - truth {v - truth:+.3f})")
    print(f"  {'exact cross-entropy':<26} {truth:7.3f} +- {se_truth:.3f}")
    print(f"estimators took {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
