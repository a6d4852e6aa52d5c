"""The SB max–min objective (docs/math.md §5, SI 3.39) and a short solve on a 1-D Gaussian problem."""

import dataclasses
import math

import pytest
import torch

from bridge.interpolants import BrownianGamma, Linear
from bridge.reference import InterpolantOracle, gaussian
from bridge.sb import CheckpointMismatchError, SBConfig, TwoNetDrift, build_interpolant, sb_objective, solve_bridge
from bridge.sb import build_drift as solver_build_drift

DT = torch.float64


@pytest.mark.parametrize("eps", [0.25, 1.0])
def test_inner_minimiser_is_forward_drift(eps):
    """For a fixed interpolant the objective is a quadratic loss whose minimiser is b_F = b + eps s:
    objective[f] - objective[b_F] = 1/2 E|f - b_F|^2 (checked by Monte Carlo, common random numbers,
    4 standard errors of the per-sample difference)."""
    interp = Linear()
    oracle = InterpolantOracle(
        interp, gaussian([0.0, 1.0], [1.0, 0.5]), gaussian([2.0, -1.0], [[2.0, 0.5], [0.5, 1.0]])
    )
    fields = oracle.fields()
    b_f = fields.forward_drift(eps)
    h = lambda t, x: 0.3 * torch.sin(x) + 0.2 * t[:, None]
    f = lambda t, x: b_f(t, x) + h(t, x)
    g = torch.Generator().manual_seed(0)
    n = 40000
    x0 = oracle.marginal(0.0).sample(n, generator=g)
    x1 = oracle.marginal(1.0).sample(n, generator=g)
    t = 0.01 + 0.98 * torch.rand(n, generator=g, dtype=DT)
    z = torch.randn(n, 2, generator=g, dtype=DT)
    diff = sb_objective(f, interp, x0, x1, eps, t=t, z=z) - sb_objective(b_f, interp, x0, x1, eps, t=t, z=z)
    s = interp.sample(t, x0, x1, z)
    quad = 0.25 * (h(t, s.xt).pow(2).sum(-1) + h(t, s.xt_anti).pow(2).sum(-1))  # antithetic average of 1/2|h|^2
    stat = diff - quad
    se = stat.std() / math.sqrt(n)
    assert abs(float(stat.mean())) < 4 * float(se), (float(stat.mean()), float(se))
    assert float(quad.mean()) > 10 * float(se)  # the excess itself is clearly resolved


def test_solve_bridge_validates_input():
    x = torch.randn(10, 1)
    with pytest.raises(ValueError, match="eps"):
        solve_bridge(x, x, 0.0)
    with pytest.raises(ValueError, match="dimension"):
        solve_bridge(x, torch.randn(10, 2), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        solve_bridge(x, torch.full((10, 1), float("nan")), 0.5)


def test_solve_bridge_runs_and_samples_shapes():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1
    lines = []
    res = solve_bridge(
        x0,
        x1,
        0.5,
        config=SBConfig(outer_steps=3, warmup_steps=2, batch_size=32, hidden=8, log_every=1),
        progress=lines.append,
    )
    outer = [m for m in lines if "outer" in m]
    assert res.steps == 3 and len(outer) == 3 and "kinetic" in outer[0]
    assert any("fresh minibatch plans" in m for m in lines) and res.coupling["coupling"] == "minibatch"
    y = res.sample(x0[:5], per_point=4, steps=10, generator=g)
    assert y.shape == (5, 4, 2) and torch.isfinite(y).all()
    curves = res.coefficient_curves(torch.linspace(0, 1, 5))
    assert curves["alpha"].shape == (5, 2) and bool(curves["gamma"][0].eq(0).all())


@pytest.mark.parametrize(
    "coupling, holdout",
    [
        ("auto", 0.0),
        ("minibatch", 0.0),
        ("sinkhorn", 0.0),
        ("independent", 0.0),
        ("minibatch", 0.2),
        ("sinkhorn", 0.2),
        ("independent", 0.2),
    ],
)
def test_resume_after_interruption_continues_exactly(tmp_path, coupling, holdout):
    """An interrupted solve leaves a usable checkpoint; resuming it gives the uninterrupted result
    (with ``holdout``: the same validation curve and the same best state). With the independent
    coupling, the coupling refinement (``refine_rounds="auto"``: one round, after step 6 of 12)
    starts in the resumed part, and with ``refine_share=0.75`` (the round starts after step 3) the
    interruption falls inside it: its pairs come back from the checkpoint."""
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 1
    cfg = SBConfig(
        holdout=holdout,
        val_every=2,
        val_size=100,
        outer_steps=12,
        warmup_steps=3,
        batch_size=32,
        hidden=8,
        log_every=1,
        coupling=coupling,
        plan_size=100,
        minibatch_tol=0.3,  # loose, so that a cold restart of the warm-started minibatch plans draws other pairs
        refine_pairs=200,
        refine_sde_steps=4,
        refine_share=0.75 if holdout else 0.5,
    )
    full = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
    assert ("refine" in full.coupling) == (coupling == "independent")

    class Interrupt(Exception):
        pass

    def stop_at_7(msg):
        if "outer      7/" in msg:
            raise Interrupt  # like Ctrl-C in the middle of training

    ckpt = tmp_path / "state.pt"
    with pytest.raises(Interrupt):
        solve_bridge(x0, x1, 0.5, config=cfg, progress=stop_at_7, checkpoint=ckpt, checkpoint_every=0.0)
    lines = []
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lines.append, checkpoint=ckpt, resume=True)
    assert any("resumed" in m and "outer step 6" in m for m in lines)  # the last complete step was saved
    assert res.steps == 12 and [h["step"] for h in res.history] == list(range(1, 13))
    t, x = torch.linspace(0.05, 0.95, 7), torch.randn(7, 2, generator=g)
    with torch.no_grad():
        assert torch.equal(res.drift(t, x), full.drift(t, x))
    for p, q in zip(res.interpolant.parameters(), full.interpolant.parameters(), strict=True):
        assert torch.equal(p, q)
    timeless = lambda v: v | {"curve": [c | {"wall_s": None} for c in v.get("curve", [])]}
    assert timeless(res.validation) == timeless(full.validation)
    if holdout:
        assert [c["step"] for c in res.validation["curve"]] == [2, 4, 6, 8, 10, 12]
    if coupling == "independent":
        steps = [r["step"] for r in res.coupling["refine"]["started"]]
        assert steps == [r["step"] for r in full.coupling["refine"]["started"]] == ([3] if holdout else [6])


def test_resume_refuses_a_checkpoint_of_another_problem(tmp_path):
    x = torch.randn(100, 2)
    cfg = SBConfig(outer_steps=2, warmup_steps=1, batch_size=16, hidden=8, log_every=0, plan_size=50)
    ckpt = tmp_path / "state.pt"
    solve_bridge(x, x + 1, 0.5, config=cfg, checkpoint=ckpt, progress=lambda m: None)
    with pytest.raises(ValueError, match="another problem"):
        solve_bridge(x, x + 1, 0.7, config=cfg, checkpoint=ckpt, resume=True, progress=lambda m: None)


def test_resume_extends_a_finished_run_and_checks_the_data(tmp_path):
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g) + 1
    cfg = SBConfig(outer_steps=4, warmup_steps=1, batch_size=16, hidden=8, log_every=1, plan_size=50)
    ckpt = tmp_path / "state.pt"
    solve_bridge(x0, x1, 0.5, config=cfg, checkpoint=ckpt, progress=lambda m: None)
    longer = dataclasses.replace(cfg, outer_steps=6)
    res = solve_bridge(x0, x1, 0.5, config=longer, checkpoint=ckpt, resume=True, progress=lambda m: None)
    assert res.steps == 6 and [h["step"] for h in res.history] == list(range(1, 7))
    other = x1.clone()
    other[0, 0] += 1e-3  # same shapes, other data
    with pytest.raises(CheckpointMismatchError, match="another problem"):
        solve_bridge(x0, other, 0.5, config=longer, checkpoint=ckpt, resume=True, progress=lambda m: None)


def test_two_network_drift_is_the_forward_drift():
    """TwoNetDrift(b, eta) with the exact b and eta_z of a Gaussian interpolant equals the oracle's
    b + eps s, with gamma read from the (zero-parameter, i.e. linear Brownian-bridge) Fourier interpolant."""
    eps = 0.7
    fourier = build_interpolant(SBConfig(), 2, eps)
    oracle = InterpolantOracle(
        Linear(gamma=BrownianGamma(a=2 * eps)),
        gaussian([0.0, 1.0], [1.0, 0.5]),
        gaussian([2.0, -1.0], [[2.0, 0.5], [0.5, 1.0]]),
    )
    drift = TwoNetDrift(oracle.b, oracle.eta, t_min=1e-3).bind(fourier, eps)
    g = torch.Generator().manual_seed(3)
    t = 0.01 + 0.98 * torch.rand(64, generator=g, dtype=DT)
    x = torch.randn(64, 2, generator=g, dtype=DT)
    assert torch.allclose(drift(t, x), oracle.b(t, x) + eps * oracle.s(t, x), atol=1e-10, rtol=1e-8)
    assert torch.allclose(drift.score(t, x), oracle.s(t, x), atol=1e-10, rtol=1e-8)
    # the ends are clamped to [t_min, 1 - t_min], where gamma > 0
    ends = torch.tensor([0.0, 1.0], dtype=DT)
    assert torch.isfinite(drift(ends, x[:2])).all()


@pytest.mark.parametrize("split", ["v", "w"])
@pytest.mark.parametrize("learned_gamma", [False, True])
def test_velocity_splits_give_the_forward_drift(split, learned_gamma):
    """The splits "v" (first net v = E[d/dt I | x_t]) and "w" (E[d/dt I + c/2 z | x_t], c = gamma_dot -
    eps/gamma) with the oracle's exact fields and eta_z give the oracle's b + eps s, b and s; also with a
    non-trivial learned gamma factor, where the oracle's interpolant is the Fourier interpolant itself."""
    eps = 0.7
    fourier = build_interpolant(SBConfig(), 2, eps)
    if learned_gamma:
        with torch.no_grad():
            fourier.c.copy_(0.3 * torch.randn(fourier.c.shape, generator=torch.Generator().manual_seed(1)))
    oracle = InterpolantOracle(
        fourier,
        gaussian([0.0, 1.0], [1.0, 0.5]),
        gaussian([2.0, -1.0], [[2.0, 0.5], [0.5, 1.0]]),
    )
    g = torch.Generator().manual_seed(3)
    if split == "v":
        first = oracle.v
    else:  # w = v + (c/2) eta_z; c from the interpolant's gamma and gamma_dot through autograd (not gamma_gamma_dot)

        def first(t, x):
            with torch.enable_grad():
                tt = t.detach().clone().requires_grad_(True)
                gam = fourier.gamma(tt)  # (n,) or (n, d) with per-dimension coefficients
                gam = (gam if gam.dim() == 2 else gam.unsqueeze(-1)).expand_as(x)
                # gamma's column j depends on t only: one gradient per column
                gd = torch.stack(
                    [torch.autograd.grad(gam[:, j].sum(), tt, retain_graph=True)[0] for j in range(x.shape[1])], 1
                )
            c = gd - eps / gam.detach()
            return oracle.v(t, x) + 0.5 * c * oracle.eta(t, x)

    drift = TwoNetDrift(first, oracle.eta, t_min=1e-3, split=split).bind(fourier, eps)
    t = 0.01 + 0.98 * torch.rand(64, generator=g, dtype=DT)
    x = torch.randn(64, 2, generator=g, dtype=DT)
    with torch.no_grad():
        assert torch.allclose(drift(t, x), oracle.b(t, x) + eps * oracle.s(t, x), atol=1e-8, rtol=1e-7)
        assert torch.allclose(drift.velocity(t, x), oracle.b(t, x), atol=1e-9, rtol=1e-7)
        assert torch.allclose(drift.score(t, x), oracle.s(t, x), atol=1e-9, rtol=1e-7)
        assert torch.isfinite(drift(torch.tensor([0.0, 1.0], dtype=DT), x[:2])).all()
    with pytest.raises(ValueError, match="split"):
        TwoNetDrift(oracle.v, oracle.eta, t_min=1e-3, split="u")


def _pair_sampler(x0, x1, eps, cfg, gen, say):
    """The coupling that solve_bridge builds for ``cfg`` (its ``"auto"`` choice included) and its record."""
    from bridge.sb.setup import couple as _couple

    _, draw, info = _couple(dataclasses.replace(cfg, drift_family="network"), x0, x1, eps, gen, say, None)
    return draw, info


def test_several_plans_use_disjoint_subsets():
    """plan_count plans on disjoint subsets: pairs come from one plan each, and together they use
    plan_count * plan_size points per side."""
    g = torch.Generator().manual_seed(5)
    x0, x1 = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 1
    cfg = SBConfig(plan_size=50, plan_count=3, coupling="sinkhorn")
    draw, info = _pair_sampler(x0, x1, 0.5, cfg, g, lambda m: None)
    assert info["plan_count"] == 3 and info["plan_size"] == [50, 50] and info["plan_marginal_error"] <= 1e-2
    a, b = draw(20000)
    rows0 = {tuple(r) for r in a.tolist()}
    assert 100 < len(rows0) <= 150  # more than one plan's points, no more than three plans'
    subset_of_a = {tuple(r): k for k in range(3) for r in draw.a[k].tolist()}
    subset_of_b = {tuple(r): k for k in range(3) for r in draw.b[k].tolist()}
    assert all(
        subset_of_a[tuple(p)] == subset_of_b[tuple(q)] for p, q in zip(a[:500].tolist(), b[:500].tolist(), strict=True)
    )
    with pytest.raises(ValueError, match="plan_count"):
        _pair_sampler(x0, x1, 0.5, SBConfig(plan_count=0), g, lambda m: None)


def _gaussian_problem(d):
    if d == 1:
        return torch.zeros(1), torch.eye(1), torch.tensor([2.0]), torch.tensor([[4.0]])
    return (
        torch.zeros(2),
        torch.tensor([[1.0, 0.5], [0.5, 1.0]]),
        torch.tensor([2.0, -1.0]),
        torch.tensor([[2.0, -0.6], [-0.6, 0.8]]),  # does not commute with the source covariance
    )


@pytest.mark.slow
@pytest.mark.parametrize("d, gradient_drift", [(1, False), (2, False), (2, True)])
def test_solve_bridge_recovers_the_gaussian_sb(d, gradient_drift):
    """Default solver (short run) on N(m0, A) -> N(m1, B) at eps = 0.5: the learned coupling's
    cross-covariance, mean and covariance of X_1 match the closed form (docs/math.md §7) within four
    standard errors of the sample sizes involved: the n training points per side fix the plan the
    solver learns up to the sampling error of an n-point covariance, and the N evaluation
    samples add their own. Independence (C = 0) or another eps (C = 0.83 / 1.95 at eps = 2 / 0.05
    in 1-D, against 1.56) would fail."""
    from bridge.reference import gaussian_sb

    eps, n, N = 0.5, 3000, 8000
    m0, A, m1, B = _gaussian_problem(d)
    ref = gaussian_sb(m0.double(), A.double(), m1.double(), B.double(), eps=eps)
    g = torch.Generator().manual_seed(0)
    L0, L1 = torch.linalg.cholesky(A), torch.linalg.cholesky(B)
    x0 = m0 + torch.randn(n, d, generator=g) @ L0.T
    x1 = m1 + torch.randn(n, d, generator=g) @ L1.T
    cfg = SBConfig(outer_steps=150, warmup_steps=100, hidden=64, depth=2, log_every=0, seed=0)
    res = solve_bridge(x0, x1, eps, config=dataclasses.replace(cfg, gradient_drift=gradient_drift))
    xs = m0 + torch.randn(N, d, generator=g) @ L0.T
    y = res.sample(xs, per_point=1, steps=60, generator=g)[:, 0].double()
    xs = xs.double()
    C = (xs - xs.mean(0)).T @ (y - y.mean(0)) / N
    # SE of a sample cross-covariance entry: sqrt((A_ii B_jj + C_ij^2) / size)
    Ad, Bd, Cref = torch.diagonal(A).double(), torch.diagonal(B).double(), ref.C
    se_c = ((Ad[:, None] * Bd[None, :] + Cref**2) * (1 / n + 1 / N)).sqrt()
    assert ((C - Cref).abs() <= 4 * se_c).all(), (C, Cref, se_c)
    se_m = (Bd * (1 / n + 1 / N)).sqrt()
    assert ((y.mean(0) - m1.double()).abs() <= 4 * se_m).all(), y.mean(0)
    # SE of a sample covariance entry: sqrt((B_ii B_jj + B_ij^2) / size)
    Bdd = B.double()
    se_v = ((Bd[:, None] * Bd[None, :] + Bdd**2) * (1 / n + 1 / N)).sqrt()
    assert ((torch.cov(y.T).reshape(d, d) - Bdd).abs() <= 4 * se_v).all(), torch.cov(y.T)


def test_a_budget_eaten_by_the_coupling_is_reported_not_silent():
    """With a time budget smaller than the Sinkhorn plans take, only one plan is built (later plans
    would exceed their share of the budget) and the untrained result comes with a warning."""
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(800, 2, generator=g), torch.randn(800, 2, generator=g) + 2
    cfg = SBConfig(plan_size=200, plan_count=4, time_budget=1e-4, log_every=0, hidden=8, depth=1, coupling="sinkhorn")
    with pytest.warns(RuntimeWarning) as caught:
        res = solve_bridge(x0, x1, 0.5, config=cfg)
    messages = [str(w.message) for w in caught]
    assert any("the whole time budget" in m for m in messages) and any("no outer steps" in m for m in messages)
    assert res.steps == 0 and res.stopped_by == "time_budget"
    assert res.coupling["plan_count"] == 1 and res.coupling["plan_count_limited_by_time_budget"]
    # without a budget all four plans are built
    res = solve_bridge(x0, x1, 0.5, config=dataclasses.replace(cfg, time_budget=None, outer_steps=1, warmup_steps=0))
    assert res.coupling["plan_count"] == 4 and not res.coupling["plan_count_limited_by_time_budget"]


def test_paired_coupling_keeps_the_rows_together():
    g = torch.Generator().manual_seed(6)
    x0 = torch.randn(400, 3, generator=g)
    x1 = -2.0 * x0.flip(1) + 1.0  # a pairing no plan between the two clouds would produce
    draw, info = _pair_sampler(x0, x1, 0.5, SBConfig(coupling="paired"), g, lambda m: None)
    a, b = draw(5000)
    assert info == {"coupling": "paired"} and len({tuple(r) for r in a.tolist()}) > 350
    torch.testing.assert_close(b, -2.0 * a.flip(1) + 1.0, rtol=0, atol=0)
    with pytest.raises(ValueError, match="as many rows"):
        _pair_sampler(x0, x1[:-1], 0.5, SBConfig(coupling="paired"), g, lambda m: None)


def test_auto_coupling_uses_minibatch_plans_for_a_resolved_plan():
    g = torch.Generator().manual_seed(7)
    x0, x1 = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g) + 1
    lines = []
    draw, info = _pair_sampler(x0, x1, 0.5, SBConfig(plan_size=200), g, lines.append)
    assert info["coupling"] == "minibatch" and info["requested"] == "auto" and "minibatch plans" in lines[-1]
    assert info["plan_row_ess_median"] >= 10  # 2-D, eps = 0.5: a row spreads over many of the 200 targets
    a, b = draw(64)
    assert a.shape == b.shape == (64, 2)


def test_minibatch_pairs_follow_the_minibatch_plan():
    """Each drawn x0 gets its partner from its row of the entropic plan (POT) between the drawn
    points: the partners' mean log P(j | i) matches the rows' mean negative entropy (its expectation
    under the plan) within 4 standard errors, which a random partner (about 2 nats lower here) fails."""
    from bridge.ot import entropic_plan

    g = torch.Generator().manual_seed(11)
    x0, x1 = torch.randn(300, 2, generator=g, dtype=DT), torch.randn(300, 2, generator=g, dtype=DT) + 1
    eps, n = 0.05, 200
    gen = torch.Generator().manual_seed(12)
    draw, info = _pair_sampler(x0, x1, eps, SBConfig(coupling="minibatch", batch_size=n), gen, lambda m: None)
    assert info["coupling"] == "minibatch" and info["minibatch_size"] == n
    logp, neg_h, rand_logp = [], [], []
    for _ in range(5):
        state = gen.get_state()
        a, b = draw(n)
        gen.set_state(state)  # the same minibatch indices again
        i0 = torch.randint(0, 300, (n,), generator=gen)
        i1 = torch.randint(0, 300, (n,), generator=gen)
        assert torch.equal(a, x0[i0])
        rows = entropic_plan(x0[i0], x1[i1], eps, tol=1e-6).plan * n  # P(j | i)
        j = torch.cdist(b, x1[i1]).argmin(1)  # the partner's index in the minibatch
        logp.append(rows.gather(1, j[:, None]).squeeze(1).log())
        neg_h.append((rows * rows.clamp_min(1e-300).log()).sum(1))
        rand_logp.append(rows.clamp_min(1e-300).log().mean(1))
    logp, neg_h, rand_logp = torch.cat(logp), torch.cat(neg_h), torch.cat(rand_logp)
    se = float((logp - neg_h).std()) / len(logp) ** 0.5
    assert abs(float(logp.mean() - neg_h.mean())) <= 4 * se
    assert float(neg_h.mean() - rand_logp.mean()) > 10 * se


def _unresolved(seed=8, n=600):
    """d = 16 at eps = 0.01: between 256 points per side a Sinkhorn row sits on about one target."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g) + 0.5


def test_auto_coupling_switches_to_independent_for_an_unresolved_plan():
    from bridge.sb.auto import AUTO_MIN_ROW_ESS

    x0, x1 = _unresolved()
    g = torch.Generator().manual_seed(9)
    lines = []
    draw, info = _pair_sampler(x0, x1, 0.01, SBConfig(plan_size=256), g, lines.append)
    assert info["coupling"] == "independent" and info["requested"] == "auto"
    assert info["plan_row_ess_median"] < AUTO_MIN_ROW_ESS and "independent coupling" in lines[-1]
    a, b = draw(4000)  # independent draws: every x0 row meets many different x1 rows
    first = (a == x0[0]).all(1)
    assert len({tuple(r) for r in b[first].tolist()}) == int(first.sum()) > 0
    # the same plan kept on request: the matching is nearly one-to-one
    _, info = _pair_sampler(x0, x1, 0.01, SBConfig(plan_size=256, coupling="sinkhorn"), g, lambda m: None)
    assert info["coupling"] == "sinkhorn" and info["plan_row_ess_median"] < AUTO_MIN_ROW_ESS


@pytest.mark.slow
def test_resume_of_an_auto_run_that_chose_independent(tmp_path):
    x0, x1 = _unresolved(10, 400)
    cfg = SBConfig(outer_steps=8, warmup_steps=2, batch_size=16, hidden=8, log_every=1, plan_size=200)
    full = solve_bridge(x0, x1, 0.01, config=cfg, progress=lambda m: None)
    assert full.coupling["coupling"] == "independent"
    # gradient_drift="auto" resolves with the coupling: a gradient field, recorded for load
    assert full.config.gradient_drift is True and type(full.drift_net.first).__name__ == "GradientField"

    class Interrupt(Exception):
        pass

    def stop_at_5(msg):
        if "outer      5/" in msg:
            raise Interrupt

    ckpt = tmp_path / "state.pt"
    with pytest.raises(Interrupt):
        solve_bridge(x0, x1, 0.01, config=cfg, progress=stop_at_5, checkpoint=ckpt, checkpoint_every=0.0)
    lines = []
    res = solve_bridge(x0, x1, 0.01, config=cfg, progress=lines.append, checkpoint=ckpt, resume=True)
    assert not any("Sinkhorn plan" in m for m in lines)  # the decision is restored, not recomputed
    same = ("coupling", "requested", "plan_row_ess_median")  # timings differ between the two runs
    assert {k: res.coupling[k] for k in same} == {k: full.coupling[k] for k in same} and res.steps == 8
    t, x = torch.linspace(0.05, 0.95, 5), torch.randn(5, 16)
    with torch.no_grad():
        assert torch.equal(res.drift(t, x), full.drift(t, x))


@pytest.mark.parametrize("split", ["b", "w"])
def test_two_network_drift_with_one_time_for_all_rows(split):
    """A sampler's step passes one time for all rows; the drift, score and velocity then equal their
    row-by-row values (random interpolant parameters, per-dimension coefficients, learned gamma)."""
    torch.manual_seed(5)
    interp = build_interpolant(SBConfig(diagonal=True, learn_gamma=True), 3, 0.4)
    with torch.no_grad():
        for p in interp.parameters():
            p.normal_(0, 0.2)
    nets = [torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double() for _ in "ab"]
    drift = TwoNetDrift(*(lambda t, x, n=n: n(torch.cat([t[:, None], x], 1)) for n in nets), t_min=1e-3, split=split)
    drift = drift.bind(interp, 0.4)
    x = torch.randn(6, 3, dtype=DT)
    for t0 in (0.0, 0.3, 0.999):
        t = torch.full((6,), t0, dtype=DT)
        for name in ("forward", "score", "velocity"):
            together = getattr(drift, name)(t, x)
            apart = torch.cat([getattr(drift, name)(t[i : i + 1], x[i : i + 1]) for i in range(6)])
            torch.testing.assert_close(together, apart, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grid", ["end", "uniform"])
def test_sample_grids_reproduce_the_exact_gaussian_bridge(grid):
    """BridgeResult.sample with the exact SB drift of a 1-D Gaussian problem at a large eps (where the
    drift is stiff near t = 1): the law of x1 given x0 is the closed form's, within 4 standard errors,
    on the end-refined grid (an exact change of time) and on the uniform one."""
    from bridge.reference import gaussian_sb
    from bridge.sb import BridgeResult

    eps = 2.0
    sb = gaussian_sb(0.0, 1.0, 1.0, 0.5, eps=eps)

    class Exact(torch.nn.Module):
        def forward(self, t, x):
            return sb.drift(t, x)

    res = BridgeResult(drift_net=Exact(), interpolant=build_interpolant(SBConfig(), 1, eps), eps=eps)
    x0 = torch.tensor([[-1.0], [0.5]], dtype=DT)
    k = 20000
    y = res.sample(x0, per_point=k, steps=100, generator=torch.Generator().manual_seed(0), grid=grid)
    assert y.shape == (2, k, 1)
    mean, var = sb.conditional_mean(x0)[:, 0], sb.conditional_cov()[0, 0]
    se_mean, se_var = (var / k) ** 0.5, var * (2.0 / (k - 1)) ** 0.5
    assert ((y[:, :, 0].mean(1) - mean).abs() < 4 * se_mean).all()
    assert ((y[:, :, 0].var(1) - var).abs() < 4 * se_var).all()
    with pytest.raises(ValueError, match="^grid: expected"):
        res.sample(x0, grid="log")


def test_holdout_split_is_disjoint_and_keeps_pairs_together():
    from bridge.sb.validation import split_holdout as _split_holdout

    x0 = torch.arange(40.0).reshape(20, 2)
    x1 = -torch.arange(60.0).reshape(30, 2)
    a, b, (va, vb) = _split_holdout(x0, x1, SBConfig(holdout=0.25), torch.Generator().manual_seed(0))
    assert (a.shape[0], va.shape[0], b.shape[0], vb.shape[0]) == (15, 5, 22, 8)
    for train, held, full in ((a, va, x0), (b, vb, x1)):
        rows = {tuple(r) for r in torch.cat([train, held]).tolist()}
        assert len(rows) == full.shape[0] == train.shape[0] + held.shape[0]  # a partition of the rows
    y1 = 100 + x0  # row i of x0 and y1 is a pair
    a, b, (va, vb) = _split_holdout(x0, y1, SBConfig(holdout=0.25, coupling="paired"), torch.Generator())
    assert torch.equal(b - a, torch.full_like(a, 100.0)) and torch.equal(vb - va, torch.full_like(va, 100.0))


@pytest.mark.parametrize(
    "n, over, kept_last",
    [
        # mildly overfit: the last state is within the noise of the best one and is kept
        (60, dict(outer_steps=60, hidden=32, lr_inner=1e-2, val_every=3, val_size=512), True),
        # strongly overfit (40 points, a wider net, more steps): the best state is returned
        (40, dict(outer_steps=150, inner_steps=5, hidden=64, lr_inner=2e-2, lr_outer=0.0, val_size=1024), False),
    ],
)
def test_holdout_returns_the_best_state_unless_the_last_is_as_good(n, over, kept_last):
    """With few training points the drift overfits. Every state after the best one lost the
    comparison under the then current interpolant; the result is the last state unless the best
    one is better by more than 2 standard errors, and the returned drift and interpolant have the
    recorded held-out loss (recomputed with the public objective on the same pairs)."""
    from bridge.sb.validation import VAL_SEED_OFFSET
    from bridge.sb.validation import split_holdout as _split_holdout
    from bridge.sb.validation import validation_pairs as _validation_set

    g = torch.Generator().manual_seed(5)
    x0, x1 = torch.randn(n, 1, generator=g), 0.5 * torch.randn(n, 1, generator=g) + 2
    base = dict(warmup_steps=5, batch_size=64, log_every=0, drift_form="u", coupling="independent", holdout=0.25)
    base |= dict(refine_rounds=0)  # the max-min alone: one training target, one validation set
    cfg = SBConfig(**(base | dict(val_every=5, ema=None) | over))
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
    curve, steps = res.validation["curve"], cfg.outer_steps
    assert [c["step"] for c in curve] == list(range(cfg.val_every, steps + 1, cfg.val_every))
    best = res.validation["best_step"]
    assert res.validation["best_loss"] == next(c["val_loss"] for c in curve if c["step"] == best)
    later = [c for c in curve if c["step"] > best]
    assert later and all(c["val_loss"] >= c["best_val_loss"] for c in later)  # each later state lost
    assert curve[0]["best_val_loss"] is None and all(c["diff_se"] > 0 for c in curve[1:])
    assert res.validation["held_out"] == [n // 4, n // 4] and res.stopped_by == "steps"
    last = curve[-1]
    assert (last["val_loss"] - last["best_val_loss"] <= 2 * last["diff_se"]) == kept_last
    returned = res.validation["returned_step"]
    assert returned == (steps if kept_last else best)
    # the same held-out pairs, times and noise as the solver drew (its own generator)
    gen = torch.Generator().manual_seed(cfg.seed + VAL_SEED_OFFSET)
    held = _split_holdout(x0, x1, cfg, gen)[2]
    vs = _validation_set(held, 0.5, "independent", cfg, gen, torch.float32, "cpu")
    with torch.no_grad():
        loss = sb_objective(res.drift_net, res.interpolant, vs["x0"], vs["x1"], 0.5, t=vs["t"], z=vs["z"]).mean()
    assert float(loss) == pytest.approx(last["val_loss"] if kept_last else res.validation["best_loss"], rel=1e-5)


def test_patience_stops_early_and_save_load_keeps_the_validation(tmp_path):
    from bridge.sb import BridgeResult

    g = torch.Generator().manual_seed(6)
    x0, x1 = torch.randn(60, 1, generator=g), torch.randn(60, 1, generator=g) + 1
    cfg = SBConfig(
        outer_steps=500, warmup_steps=2, batch_size=32, hidden=16, log_every=0, coupling="independent",
        holdout=0.25, val_every=1, val_size=256, patience=2, lr_inner=2e-2,
    )  # fmt: skip
    lines = []
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lines.append)
    assert res.stopped_by == "early_stop" and res.steps < 500
    assert res.steps == res.validation["best_step"] + 2
    assert any("early stop" in m for m in lines)
    res.save(tmp_path / "r.pt")
    back = BridgeResult.load(tmp_path / "r.pt")
    assert back.validation == res.validation and back.stopped_by == "early_stop"


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("holdout", 1.0, "holdout"),
        ("holdout", -0.1, "holdout"),
        ("holdout", 0.01, "fewer than 2"),
        ("val_size", 0, "val_size"),
        ("val_every", 1.5, "val_every"),
        ("patience", 0, "patience"),
    ],
)
def test_validation_settings_are_checked(field, value, match):
    """Bad values are refused when the config is built, or (too few points) when the solve starts."""
    x = torch.randn(50, 1)
    with pytest.raises(ValueError, match=match):
        cfg = dataclasses.replace(SBConfig(outer_steps=1, warmup_steps=0, log_every=0), **{field: value})
        solve_bridge(x, x + 1, 0.5, config=cfg, progress=lambda m: None)


@pytest.mark.parametrize("form", ["u", "endpoint", "w,eta", "b,eta"])
def test_gradient_drift_is_a_gradient_field(form):
    """With ``gradient_drift`` every drift form is a gradient field: the autograd Jacobian of
    ``x -> u(t, x)`` is symmetric at random points (without it, it is not). The value is the same
    with and without a recorded graph, and a loss of it reaches the weights (double backward)."""
    d, eps = 3, 0.4
    g = torch.Generator().manual_seed(3)
    t = 0.05 + 0.9 * torch.rand(4, generator=g, dtype=DT)
    x = torch.randn(4, d, generator=g, dtype=DT)

    def drift(gradient):
        cfg = SBConfig(drift_form=form, gradient_drift=gradient, hidden=16, depth=2)
        u = solver_build_drift(cfg, d, torch.Generator().manual_seed(0)).to(DT)
        if isinstance(u, TwoNetDrift):
            u.bind(build_interpolant(cfg, d, eps), eps)
        return u

    def asymmetry(u):
        out = []
        for i in range(t.shape[0]):
            jac = torch.autograd.functional.jacobian(lambda y, i=i: u(t[i : i + 1], y[None])[0], x[i])
            out.append(float((jac - jac.T).abs().max() / jac.abs().max()))
        return max(out)

    u = drift(True)
    assert asymmetry(u) < 1e-10
    assert asymmetry(drift(False)) > 1e-3
    with torch.no_grad():
        plain = u(t, x)
    assert not plain.requires_grad
    torch.testing.assert_close(u(t, x), plain)
    u(t, x).pow(2).sum().backward()
    weights = [p for name, p in u.named_parameters() if name.endswith("weight")]  # V's last bias has no gradient
    assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_gradient_drift_survives_save_and_load(tmp_path):
    """A solve with ``gradient_drift`` saves and loads to the same drift (``build_drift`` rebuilds
    the scalar networks from the stored config); a non-bool setting is refused."""
    from bridge.sb import BridgeResult

    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g) + 1.0
    cfg = SBConfig(outer_steps=3, warmup_steps=2, inner_steps=2, hidden=16, depth=1, log_every=0, gradient_drift=True)
    res = solve_bridge(x0, x1, 0.5, config=cfg)
    res.save(tmp_path / "b.pt")
    back = BridgeResult.load(tmp_path / "b.pt")
    t, x = torch.rand(5), torch.randn(5, 2)
    torch.testing.assert_close(back.drift(t, x), res.drift(t, x))
    for bad in ("yes", 1):  # 1 == True, but not a bool
        with pytest.raises(ValueError, match="gradient_drift: expected True, False or 'auto'"):
            solve_bridge(x0, x1, 0.5, config=dataclasses.replace(cfg, gradient_drift=bad))


def test_auto_gradient_drift_leaves_plan_couplings_as_they_were():
    """``gradient_drift="auto"`` with a coupling that resolves to minibatch plans trains exactly
    the run of ``gradient_drift=False`` (same weights: the resolution draws nothing from the run's
    stream), and records False."""
    g = torch.Generator().manual_seed(7)
    x0, x1 = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g) + 1
    cfg = SBConfig(outer_steps=4, warmup_steps=2, inner_steps=2, hidden=8, depth=1, plan_size=200, log_every=0)
    auto = solve_bridge(x0, x1, 0.5, config=cfg)
    off = solve_bridge(x0, x1, 0.5, config=dataclasses.replace(cfg, gradient_drift=False))
    assert auto.coupling["coupling"] == "minibatch" and auto.config.gradient_drift is False
    for p, q in zip(auto.drift_net.parameters(), off.drift_net.parameters(), strict=True):
        assert torch.equal(p, q)
    on = solve_bridge(x0, x1, 0.5, config=dataclasses.replace(cfg, gradient_drift=True))
    assert on.config.gradient_drift is True and type(on.drift_net.first).__name__ == "GradientField"


# -- coupling refinement (SBConfig.refine_rounds) ---------------------------------------------------
def test_refinement_pairs_of_the_exact_drift_follow_the_gaussian_plan():
    """``_sde_pairs`` with the closed-form SB drift (docs/math.md §7) draws pairs of the SB plan: their
    cross-covariance and the law of ``x1`` match the closed form within four standard errors. A
    wrong diffusion (eps off by 2x), or the uniform grid's error, would show."""
    from bridge.reference import gaussian_sb
    from bridge.sb.refine import sde_pairs as _sde_pairs

    m0, A, m1, B = (t.double() for t in _gaussian_problem(1))
    eps, n = 0.5, 20000
    ref = gaussian_sb(m0, A, m1, B, eps=eps)
    g = torch.Generator().manual_seed(3)
    x0 = m0 + torch.randn(4000, 1, generator=g, dtype=DT) * A.sqrt()

    class Exact(torch.nn.Module):
        def forward(self, t, x):
            return ref.drift(t, x)

    xa, xb = _sde_pairs(Exact(), x0, n, eps, 40, g)
    assert xa.shape == xb.shape == (n, 1)
    assert all(bool((x0 == r).all(1).any()) for r in xa[:50])  # x0 rows of the data, drawn with replacement
    c = float(((xa - xa.mean()) * (xb - xb.mean())).mean())
    a, b, cref = float(A), float(B), float(ref.C)
    assert abs(c - cref) <= 4 * math.sqrt((a * b + cref**2) / n) + 4 * math.sqrt(a / 4000) * cref, (c, cref)
    assert abs(float(xb.mean()) - float(m1)) <= 4 * math.sqrt(b / n) + 4 * math.sqrt(a / 4000)
    assert abs(float(xb.var()) - b) <= 4 * b * math.sqrt(2 / n) + 4 * b * math.sqrt(2 / 4000)


def test_refinement_rounds_train_on_sde_pairs_with_the_reset_interpolant(monkeypatch):
    """With ``refine_rounds=2`` and ``refine_share=0.5`` of 12 outer steps, the rounds start after
    steps 6 and 9; each draws ``refine_pairs`` pairs from the SDE of the drift so far, under the
    interpolant trained so far, then trains on exactly those pairs under the starting interpolant."""
    import bridge.sb.solver as solver
    from bridge.interpolants import FourierInterpolant
    from bridge.sb.couplings import PairedRows

    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 1
    interp = FourierInterpolant(3, dim=2, gamma=BrownianGamma(a=1.0))
    start = [p.detach().clone() for p in interp.parameters()]
    seen = {"pools": [], "interp_at_draw": [], "interp_at_train": []}
    real_pairs, real_pool = solver.sde_pairs, PairedRows.__call__

    def pairs(drift, x, n, eps, steps, gen, progress=None):
        seen["interp_at_draw"].append([p.detach().clone() for p in interp.parameters()])
        out = real_pairs(drift, x, n, eps, steps, gen, progress)
        seen["pools"].append(out)
        return out

    def pool_call(self, n):
        if len(seen["interp_at_train"]) < len(seen["pools"]):  # the first batch of each round
            seen["interp_at_train"].append([p.detach().clone() for p in interp.parameters()])
        a, b = real_pool(self, n)
        xa, xb = seen["pools"][-1]
        assert all(bool(((xa == r).all(1) & (xb == s).all(1)).any()) for r, s in zip(a, b, strict=True))
        return a, b

    monkeypatch.setattr(solver, "sde_pairs", pairs)
    monkeypatch.setattr(PairedRows, "__call__", pool_call)
    cfg = SBConfig(
        outer_steps=12, warmup_steps=2, batch_size=16, hidden=8, log_every=1, coupling="independent",
        refine_rounds=2, refine_pairs=500, refine_sde_steps=5, lr_outer=0.05,
    )  # fmt: skip
    lines = []
    res = solve_bridge(x0, x1, 0.5, interpolant=interp, config=cfg, progress=lines.append)
    assert [r["step"] for r in res.coupling["refine"]["started"]] == [6, 9]
    assert sum("coupling refinement, round" in m for m in lines) == 2
    assert [h["phase"] for h in res.history] == [0] * 6 + [1] * 3 + [2] * 3
    for xa, xb in seen["pools"]:
        assert xa.shape == xb.shape == (500, 2) and bool(torch.isfinite(xb).all())
        assert all(bool((x0 == r).all(1).any()) for r in xa[:50])
    for moved in seen["interp_at_draw"]:  # the outer loop had moved the interpolant ...
        assert any(not torch.equal(p, q) for p, q in zip(moved, start, strict=True))
    assert len(seen["interp_at_train"]) == 2
    for reset in seen["interp_at_train"]:  # ... and each round starts again from the first one
        assert all(torch.equal(p, q) for p, q in zip(reset, start, strict=True))


def test_auto_refinement_is_off_with_plans_and_on_with_the_independent_coupling():
    """``refine_rounds="auto"`` trains exactly the ``refine_rounds=0`` run with minibatch plans
    (same weights, no record), and one round with the independent coupling."""
    g = torch.Generator().manual_seed(7)
    x0, x1 = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g) + 1
    cfg = SBConfig(outer_steps=4, warmup_steps=2, inner_steps=2, hidden=8, depth=1, plan_size=200, log_every=0)
    auto = solve_bridge(x0, x1, 0.5, config=cfg)
    off = solve_bridge(x0, x1, 0.5, config=dataclasses.replace(cfg, refine_rounds=0))
    assert auto.coupling["coupling"] == "minibatch" and "refine" not in auto.coupling
    for p, q in zip(auto.drift_net.parameters(), off.drift_net.parameters(), strict=True):
        assert torch.equal(p, q)
    ind = solve_bridge(x0, x1, 0.5, config=dataclasses.replace(cfg, coupling="independent", refine_pairs=100))
    assert ind.coupling["refine"]["rounds"] == 1 and [r["step"] for r in ind.coupling["refine"]["started"]] == [2]


@pytest.mark.parametrize(
    "field, value",
    [
        ("refine_rounds", -1),
        ("refine_rounds", "two"),
        ("refine_rounds", True),
        ("refine_share", 0.0),
        ("refine_share", 1.0),
        ("refine_pairs", 1),
        ("refine_sde_steps", 0),
    ],
)
def test_refinement_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        SBConfig(outer_steps=1, warmup_steps=0, log_every=0, **{field: value})


def test_long_stages_report_their_progress(monkeypatch):
    """Between the logged records, training says every ``progress.EVERY_S`` seconds where it is and
    how long is left; the refinement round says how many of its pairs are drawn (here EVERY_S = 0:
    a line at every chance). The draws are those of a silent run."""
    import bridge.progress

    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1
    cfg = SBConfig(
        outer_steps=6, warmup_steps=2, batch_size=16, hidden=8, log_every=100, coupling="independent",
        refine_rounds=1, refine_pairs=300, refine_sde_steps=4, time_budget=1000.0,
    )  # fmt: skip
    quiet = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
    monkeypatch.setattr(bridge.progress, "EVERY_S", 0.0)
    lines = []
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lines.append)
    ticks = [m for m in lines if m.startswith("[solve] training:")]
    assert any("warm-up 1/2" in m for m in ticks) and any("step 5/6" in m for m in ticks)
    assert all("left" in m and "budget" in m for m in ticks)
    assert any("300/300 refinement pairs" in m and m.endswith("done") for m in lines)
    for p, q in zip(res.drift_net.parameters(), quiet.drift_net.parameters(), strict=True):
        assert torch.equal(p, q)
