"""Tests for bridge.ot_online (blockwise Sinkhorn with eps-scaling) and bridge.ot_backend (the choice).

Independent references: POT's ``ot.sinkhorn(..., method="sinkhorn_log")`` on the dense cost
(potentials, plan, marginals), the Gaussian closed form of bridge.reference.gaussian_sb (the
cross-covariance of the EOT plan), and the tensors that torch's dispatcher sees (no ``n x m``).

Tolerances:

| check                                                 | tolerance     | reason                                              |
|-------------------------------------------------------|---------------|-----------------------------------------------------|
| potentials (up to f + c, g - c) vs POT                 | 1e-7 (rel.)   | both stop at marginal L1 error 1e-10; float64       |
| plan (L1), marginals, cost, cross-covariance vs POT    | 1e-8          | same                                                |
| objective from the potentials vs POT plan's primal     | 1e-8          | same; dual formula against the primal one           |
| out-of-sample conditional and map vs POT's potential   | 1e-7          | softmax of potentials that agree to 1e-7 / reg      |
| float32 solver vs POT                                  | 1e-3          | float32 rounding of the log-sum-exp, tol 1e-4       |
| conditional_sample frequencies                         | |z| < 5       | binomial standard errors, 20000 draws               |
| cross-covariance vs Gaussian closed form (n = 3000)    | 5 s.e.        | s.e. = sqrt((A_kk B_ll + C_kl^2) / n), sampling     |
| largest tensor of a chunked solve                      | < n m / 16    | an n x m tensor, or a block of all rows, would fail |
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from bridge.ot import ConvergenceError, _sqdist, entropic_plan
from bridge.ot_backend import DENSE_PLAN_BYTES, plan_backend, solve_plan
from bridge.ot_online import chunked_sinkhorn
from bridge.reference.gaussian_sb import gaussian_sb

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clouds(n=150, m=120, d=2, seed=0):
    g = gen(seed)
    x0 = torch.randn(n, d, generator=g, dtype=F64)
    x1 = 0.7 * torch.randn(m, d, generator=g, dtype=F64) + 1.0
    return x0, x1


def pot_reference(x0, x1, eps):
    """POT's plan and potentials (f = reg log u, g = reg log v) on the dense cost."""
    import ot

    n, m, reg = x0.shape[0], x1.shape[0], 4 * eps
    a, b = torch.full((n,), 1 / n, dtype=F64), torch.full((m,), 1 / m, dtype=F64)
    plan, log = ot.sinkhorn(
        a, b, ot.dist(x0, x1), reg, method="sinkhorn_log", numItermax=100_000, stopThr=1e-13, log=True
    )
    assert float((plan.sum(0) - b).abs().sum()) < 1e-10 and float((plan.sum(1) - a).abs().sum()) < 1e-10
    return plan, reg * log["log_u"], reg * log["log_v"]


@pytest.mark.parametrize(
    "eps, block_bytes",  # 512 bytes: tiles of one row and 64 of the 120 columns
    [
        (0.05, 2**20),
        (0.5, 2**20),
        (2.0, 2**20),
        pytest.param(0.05, 512, marks=pytest.mark.slow),
        (0.5, 512),
        (2.0, 512),
    ],
)
def test_chunked_plan_equals_pot(eps, block_bytes):
    x0, x1 = clouds()
    plan, f, g = pot_reference(x0, x1, eps)
    res = chunked_sinkhorn(x0, x1, eps, tol=1e-10, block_bytes=block_bytes)
    assert res.converged and res.solver == "chunked" and res.marginal_error <= 1e-10
    shift = float((res.f - f).mean())  # potentials are unique up to (f + c, g - c)
    scale = float(f.abs().max() + g.abs().max())
    assert torch.allclose(res.f - shift, f, atol=1e-7 * scale, rtol=0)
    assert torch.allclose(res.g + shift, g, atol=1e-7 * scale, rtol=0)
    assert float((res.plan_matrix() - plan).abs().sum()) < 1e-8
    rows, cols = res.marginals()
    assert float((rows - 1 / 150).abs().sum()) < 1e-9 and float((cols - 1 / 120).abs().sum()) < 1e-9
    assert res.transport_cost() == pytest.approx(float((plan * _sqdist(x0, x1)).sum()), abs=1e-8)
    xc, yc = x0 - plan.sum(1) @ x0, x1 - plan.sum(0) @ x1
    assert torch.allclose(res.cross_covariance(), xc.T @ plan @ yc, atol=1e-8, rtol=0)
    kl = (plan * (plan.log() + math.log(150 * 120))).sum()
    assert res.value() == pytest.approx(float((plan * _sqdist(x0, x1)).sum() + 4 * eps * kl), abs=1e-8)


def test_out_of_sample_conditionals_match_pot_potential():
    x0, x1 = clouds()
    eps = 0.25
    plan, _, g = pot_reference(x0, x1, eps)
    res = chunked_sinkhorn(x0, x1, eps, tol=1e-10, block_bytes=512)  # tiles of 64 of the 120 targets
    new = torch.randn(40, 2, generator=gen(3), dtype=F64) * 2
    want = torch.log_softmax((g - _sqdist(new, x1)) / (4 * eps), dim=1)
    assert torch.allclose(res.log_conditional(new), want, atol=1e-7, rtol=0)
    assert torch.allclose(res.barycentric_map(new), want.exp() @ x1, atol=1e-7, rtol=0)
    # in sample, the map is P y / a (the plan's rows)
    assert torch.allclose(res.barycentric_map(), (plan @ x1) * 150, atol=1e-7, rtol=0)


def test_conditional_sample_frequencies():
    x0, x1 = clouds(n=60, m=8, seed=1)
    res = chunked_sinkhorn(x0, x1, 0.5, tol=1e-10, block_bytes=16)  # tiles of one row and 2 targets
    draws = res.conditional_sample(x0[:3], 20_000, generator=gen(4))
    freq = (draws[:, :, None, :] == x1[None, None]).all(-1).double().mean(1)
    p = res.log_conditional(x0[:3]).exp()
    z = (freq - p) / torch.sqrt(p * (1 - p) / 20_000)
    assert float(z.abs().max()) < 5


def test_float32_solver_agrees_with_pot():
    x0, x1 = clouds(n=400, m=300, seed=2)
    plan, _, _ = pot_reference(x0, x1, 0.25)
    res = chunked_sinkhorn(x0, x1, 0.25, dtype=torch.float32, tol=1e-4)
    assert res.f.dtype == torch.float32 and res.x0.dtype == torch.float32
    assert float((res.plan_matrix().double() - plan).abs().sum()) < 1e-3
    xc, yc = x0 - plan.sum(1) @ x0, x1 - plan.sum(0) @ x1
    assert torch.allclose(res.cross_covariance().double(), xc.T @ plan @ yc, atol=1e-3, rtol=0)


def test_eps_scaling_saves_the_slow_start_of_plain_sinkhorn():
    # small eps: POT's plain Sinkhorn from zero potentials needs 141 iterations to a marginal error
    # of 1e-3, the annealed start 10 + 60 sweeps (the final rate, set by reg, is the same)
    x0, x1 = clouds(n=300, m=300, seed=5)
    pot = entropic_plan(x0, x1, 0.02, tol=1e-3)
    res = chunked_sinkhorn(x0, x1, 0.02, tol=1e-3)
    assert res.n_iter + res.scaling_sweeps < pot.n_iter / 1.5


def test_gaussian_closed_form_cross_covariance():
    d, n, eps = 2, 3000, 0.5
    A = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    B = torch.tensor([[0.8, -0.2], [-0.2, 1.2]], dtype=F64)
    sb = gaussian_sb(torch.zeros(d, dtype=F64), A, torch.full((d,), 2.0, dtype=F64), B, eps=eps)
    g = gen(6)
    x0 = torch.randn(n, d, generator=g, dtype=F64) @ torch.linalg.cholesky(A).T
    x1 = 2.0 + torch.randn(n, d, generator=g, dtype=F64) @ torch.linalg.cholesky(B).T
    res = chunked_sinkhorn(x0, x1, eps, tol=1e-6)
    se = torch.sqrt((torch.diag(A)[:, None] * torch.diag(B)[None, :] + sb.C**2) / n)
    assert float(((res.cross_covariance() - sb.C) / se).abs().max()) < 5
    assert res.transport_cost() == pytest.approx(sb.transport_cost(), abs=5 * math.sqrt(2 * 8.0 / n))


def test_backend_choice_and_its_record():
    assert plan_backend(2048, 2048).name == "dense"  # the Sinkhorn coupling's default plans stay dense
    assert plan_backend(1000, 1000).name == "dense"  # the report's default reference plan
    side = int(math.isqrt(DENSE_PLAN_BYTES // 8))
    assert plan_backend(side, side).name == "dense" and plan_backend(side + 1, side + 1).name == "chunked"
    assert plan_backend(10, 10, backend="chunked").reason == "backend='chunked' was asked for"
    with pytest.raises(ValueError, match="backend"):
        plan_backend(10, 10, backend="keops")
    with pytest.raises(ValueError, match="memory_budget"):
        plan_backend(10, 10, memory_budget=0)
    x0, x1 = clouds()
    dense, chunked = solve_plan(x0, x1, 0.5), solve_plan(x0, x1, 0.5, memory_budget=8 * 150 * 120 - 1)
    assert dense.solver == "pot" and dense.backend_reason.startswith("dense: 150 x 120 float64 plan")
    assert chunked.solver == "chunked" and "> memory budget" in chunked.backend_reason
    assert torch.allclose(dense.cross_covariance(), chunked.cross_covariance(), atol=1e-6, rtol=0)


def test_inputs_are_checked():
    x0, x1 = clouds()
    with pytest.raises(ValueError, match="dtype"):
        chunked_sinkhorn(x0, x1, 0.5, dtype=torch.int64)
    with pytest.raises(ValueError, match="block_bytes"):
        chunked_sinkhorn(x0, x1, 0.5, block_bytes=0)
    with pytest.raises(ValueError, match="scaling"):
        chunked_sinkhorn(x0, x1, 0.5, scaling=1.0)
    with pytest.raises(ValueError, match="x1"):
        chunked_sinkhorn(x0, x1[:, :1], 0.5)
    with pytest.raises(ConvergenceError, match="marginal error"):
        chunked_sinkhorn(x0, x1, 0.01, tol=1e-12, max_iter=1)
    assert not chunked_sinkhorn(x0, x1, 0.01, tol=1e-12, max_iter=1, check=False).converged


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor (elements) that any torch operation returns."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def largest_tensor(fn) -> int:
    with LargestTensor() as mode:
        fn()
    return mode.largest


def chunked_everything(x0, x1, block_bytes):
    res = chunked_sinkhorn(x0, x1, 2.0, tol=1e-3, block_bytes=block_bytes)
    res.barycentric_map(x0[:200])
    res.conditional_sample(x0[:200], 2, generator=gen(1))
    res.cross_covariance(), res.transport_cost(), res.value(), res.row_ess(100)
    return res


def test_the_size_check_sees_an_n_by_m_tensor():
    x0, x1 = clouds(n=300, m=250)
    assert largest_tensor(lambda: entropic_plan(x0, x1, 2.0)) >= 300 * 250  # POT: dense
    assert largest_tensor(lambda: chunked_everything(x0, x1, 2**12)) < 300 * 250 / 16


@pytest.mark.slow
def test_chunked_path_never_holds_an_n_by_m_tensor():
    n = m = 20_000
    x0, x1 = clouds(n=n, m=m, seed=7)
    res = None

    def run():
        nonlocal res
        res = chunked_everything(x0, x1, 2**20)

    assert largest_tensor(run) <= 2**20 // 8 + 2 * n  # one block, or a vector of either side
    assert res.converged


def test_sinkhorn_coupling_above_the_budget_draws_from_potentials(monkeypatch):
    import bridge.ot_backend
    from bridge.sb import SBConfig
    from bridge.sb.couplings import PARTNERS, PartnerPairs, PlanPairs, make_coupling, restore_coupling

    x0, x1 = clouds(n=300, m=300, seed=8)
    cfg = SBConfig(coupling="sinkhorn", plan_size=300, plan_count=1, plan_tol=1e-6)
    dense, info_d = make_coupling("sinkhorn", x0, x1, 0.5, cfg, gen(1), lambda m: None)
    monkeypatch.setattr(bridge.ot_backend, "DENSE_PLAN_BYTES", 8 * 300 * 300 - 1)
    chunked, info_c = make_coupling("sinkhorn", x0, x1, 0.5, cfg, gen(1), lambda m: None)
    assert isinstance(dense, PlanPairs) and isinstance(chunked, PartnerPairs)
    assert info_d["plan_backend"] == "dense" and info_c["plan_backend"] == "chunked"
    assert "> memory budget" in info_c["plan_backend_reason"]
    assert info_c["plan_solver"] == "bridge.ot_online.chunked_sinkhorn"
    assert info_c["plan_row_ess_median"] == pytest.approx(info_d["plan_row_ess_median"], rel=1e-4)
    assert chunked.partners.shape == (1, 300, PARTNERS) and info_c["plan_partners_per_row"] == PARTNERS
    assert info_c["plan_dtype"] == "float64"  # plan_tol below FLOAT32_TOL; the default 1e-3 is float32
    _, info_32 = make_coupling("sinkhorn", x0, x1, 0.5, SBConfig(plan_size=300, plan_count=1), gen(1), print)
    assert info_32["plan_dtype"] == "float32" and info_32["plan_marginal_error"] <= 1e-3
    # the pairs drawn from the partners have POT's plan's cross-covariance, within sampling noise
    ref = entropic_plan(x0, x1, 0.5).cross_covariance()
    a, b = chunked(20_000)
    emp = (a - a.mean(0)).T @ (b - b.mean(0)) / a.shape[0]
    assert float((emp - ref).abs().max()) < 5 * math.sqrt(2.0 / 20_000)
    # a checkpoint holds the partners, and the restored coupling draws the same pairs
    again = restore_coupling("sinkhorn", chunked.state(), x0, x1, 0.5, cfg, gen(2))
    chunked.gen = gen(2)
    assert all(torch.equal(u, v) for u, v in zip(chunked(50), again(50)))


@pytest.mark.slow
def test_report_reference_check_above_the_budget_is_chunked(monkeypatch):
    import bridge.ot_backend
    from bridge.sb import SBConfig, solve_bridge
    from bridge.sb.evaluation import evaluate_bridge

    x0, x1 = clouds(n=260, m=260, seed=9)
    cfg = SBConfig(outer_steps=2, inner_steps=1, warmup_steps=2, batch_size=32, hidden=8, depth=2, log_every=0)
    result = solve_bridge(x0[:200], x1[:200], eps=0.5, config=cfg)

    def evaluate():
        ev = evaluate_bridge(
            result, x0[200:], x1[200:], per_point=2, sde_steps=10, sinkhorn_points=30, generator=gen(3)
        )
        return ev.settings["pot"], ev.metrics["coupling"]

    pot_d, coupling_d = evaluate()
    monkeypatch.setattr(bridge.ot_backend, "DENSE_PLAN_BYTES", 1000)
    pot_c, coupling_c = evaluate()
    assert (
        pot_d["backend"] == "dense" and pot_c["backend"] == "chunked" and "> memory budget" in pot_c["backend_reason"]
    )
    assert pot_c["function"] == "bridge.ot_online.chunked_sinkhorn" and pot_c["marginal_error"] <= 1e-6
    want, got = torch.tensor(coupling_d["pot_cross_covariance"]), torch.tensor(coupling_c["pot_cross_covariance"])
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert coupling_c["pot_transport_cost"] == pytest.approx(coupling_d["pot_transport_cost"], abs=1e-6)
