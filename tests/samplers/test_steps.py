"""The step count chosen from a measured error (``bridge.samplers.steps``): the Brownian tree's
refinement keeps the path, the two error measures against their closed forms, and the choice on
an Ornstein–Uhlenbeck SDE whose exact solution on a given Brownian path is known."""

import math

import pytest
import torch

from bridge.samplers import EulerMaruyama, StochasticHeun, sample_sde
from bridge.samplers.steps import choose_steps, law_error, path_error, refine_noise

DT = torch.float64
THETA, MU, EPS, X0, T1 = 1.5, 1.0, 0.5, 3.0, 1.0


def ou_drift(t, x):
    return -THETA * (x - MU)


def test_refine_noise_keeps_the_path_and_draws_independent_normals():
    g = torch.Generator().manual_seed(0)
    xi = torch.randn(4, 20000, generator=g, dtype=DT)
    fine = refine_noise(xi, g)
    # the two halves' normalised sum is the coarse normal, exactly (up to rounding)
    torch.testing.assert_close((fine[0::2] + fine[1::2]) / math.sqrt(2.0), xi, rtol=0, atol=1e-12)
    # each half is N(0, 1) and the halves are uncorrelated: 4 standard errors of N = 80000 normals
    # (mean: 1/sqrt(N); variance: sqrt(2/N); correlation of the pairs: 1/sqrt(N))
    n = fine[0::2].numel()
    assert abs(float(fine.mean())) < 4 / math.sqrt(2 * n)
    assert abs(float(fine.var()) - 1.0) < 4 * math.sqrt(2 / (2 * n))
    assert abs(float((fine[0::2] * fine[1::2]).mean())) < 4 / math.sqrt(n)


def ou_exact(xi_fine: torch.Tensor) -> torch.Tensor:
    """The OU solution at T1 on the Brownian path whose increments are ``sqrt(h) xi_fine`` (the
    stochastic integral summed at the fine midpoints: error O(h), far below the coarse errors)."""
    m = xi_fine.shape[0]
    h = T1 / m
    s = (torch.arange(m, dtype=DT) + 0.5) * h
    weight = torch.exp(-THETA * (T1 - s)) * math.sqrt(2 * EPS * h)
    mean = MU + (X0 - MU) * math.exp(-THETA * T1)
    return mean + (weight[:, None, None] * xi_fine).sum(0)


@pytest.mark.parametrize("solver_cls", [EulerMaruyama, StochasticHeun])
def test_tree_refined_paths_converge_at_the_strong_order(solver_cls):
    # Coarse noises made by repeated refinement must describe one Brownian path at every level:
    # then the strong error against the exact solution on that path falls like 1/N (strong
    # order 1 for additive noise). Were the levels inconsistent, the error would not fall.
    # 400 paths: each RMS error has ~4% sampling error, strongly correlated across levels.
    g = torch.Generator().manual_seed(1)
    levels = [torch.randn(8, 400, 1, generator=g, dtype=DT)]
    for _ in range(10):  # 8 ... 8192 steps
        levels.append(refine_noise(levels[-1], g))
    ref = ou_exact(levels[-1])
    x = torch.full((400, 1), X0, dtype=DT)
    steps, errs = [], []
    for xi in levels[:5]:  # 8 ... 128 steps
        end = sample_sde(ou_drift, x, eps=EPS, t1=T1, steps=xi.shape[0], solver=solver_cls(), noise=xi).x
        steps.append(xi.shape[0])
        errs.append(float((end - ref).square().mean().sqrt()))
    slope = -torch.linalg.lstsq(
        torch.stack([torch.log(torch.tensor(steps, dtype=DT)), torch.ones(len(steps), dtype=DT)], 1),
        torch.log(torch.tensor(errs, dtype=DT))[:, None],
    ).solution[0, 0]
    assert abs(float(slope) - solver_cls.strong_order) < 0.2, (float(slope), errs)


def test_error_measures_against_closed_forms():
    g = torch.Generator().manual_seed(2)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=DT)
    fine = torch.randn(50, 40, 3, generator=g, dtype=DT) * scale
    shift = torch.tensor([0.3, -0.2, 0.1], dtype=DT)
    spread = float(torch.cov(fine.reshape(-1, 3).T).trace())
    # a constant shift: the conditional means differ by it, the covariances agree, the paired
    # differences have no variance: both measures are |shift|^2 / tr Cov, with no noise
    want = float(shift.square().sum()) / spread
    err, se = law_error(fine + shift, fine)
    assert err == pytest.approx(want, rel=1e-9) and se == pytest.approx(0.0, abs=1e-12)
    assert path_error(fine + shift, fine) == pytest.approx(want, rel=1e-9)
    assert law_error(fine, fine) == (0.0, 0.0) and path_error(fine, fine) == 0.0
    # scaled about the mean by 1.1: no mean term, the Bures term of S against 1.21 S is
    # (1.1 - 1)^2 tr S, so err = 0.01 (the paired differences' variance / K is subtracted from the
    # rows' mean terms, which then average to ~0 within their standard error)
    m = fine.reshape(-1, 3).mean(0)
    err, se = law_error(m + 1.1 * (fine - m), fine)
    assert abs(err - 0.01) < 3 * se + 1e-6 and se < 0.005
    # an independent draw of the same law: the pathwise error is ~2 (twice the spread), the law
    # error ~0: the mean term is unbiased, and the Bures term of two 2000-sample covariances is
    # about 2 (d + 1) / (4 * 2000) = 0.001 of the spread
    other = torch.randn(50, 40, 3, generator=g, dtype=DT) * scale
    assert path_error(other, fine) == pytest.approx(2.0, rel=0.1)
    err, se = law_error(other, fine)
    assert abs(err) < 3 * se + 0.003 and se < 0.01


def test_choose_steps_on_ou_meets_its_tolerance():
    g = torch.Generator().manual_seed(3)

    def run(x, n, xi):
        return sample_sde(ou_drift, x, eps=EPS, t1=T1, steps=n, solver=StochasticHeun(), noise=xi).x

    x0 = torch.full((5, 1), X0, dtype=DT)
    loose = choose_steps(run, x0, tol=1e-2, start=8, generator=g)
    tight = choose_steps(run, x0, tol=1e-5, start=8, generator=g)
    assert tight.steps > loose.steps and tight.error + 2 * tight.error_se <= 1e-5
    assert loose.error + 2 * loose.error_se <= 1e-2
    assert [h[0] for h in tight.history] == [8 * 2**k for k in range(len(tight.history))]
    assert tight.steps == 2 * tight.history[-1][0] and "within" in tight.reason
    # the chosen Heun sampler's law is that close to the exact one: OU's mean at T1 is known
    # (the mean is linear in the drift, so the scheme's mean error is deterministic: 1e-5
    # relative to the spread bounds the squared mean error by 1e-5 tr Cov, up to Heun's O(h^2))
    h = T1 / tight.steps
    r = 1 - THETA * h + (THETA * h) ** 2 / 2
    scheme_mean = MU + (X0 - MU) * r**tight.steps
    exact_mean = MU + (X0 - MU) * math.exp(-THETA * T1)
    var = EPS / THETA * (1 - math.exp(-2 * THETA * T1))
    assert (scheme_mean - exact_mean) ** 2 / var < 1e-4
    capped = choose_steps(run, x0, tol=1e-9, start=8, max_steps=32, generator=g)
    assert capped.steps == 32 and capped.error + 2 * capped.error_se > 1e-9 and "max_steps" in capped.reason


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"tol": 0.0}, "tol"),
        ({"tol": 1.5}, "tol"),
        ({"start": 0}, "start"),
        ({"max_steps": 63}, "max_steps"),
        ({"per_row": 1}, "per_row"),
        ({"rows": True}, "rows"),
    ],
)
def test_choose_steps_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        choose_steps(lambda x, n, xi: x, torch.zeros(3, 1), **kw)
