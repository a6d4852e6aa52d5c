"""SBConfig is checked when built; every "auto" setting is resolved in one place; results record
what was chosen; result files written before the solver was split into parts still load."""

import dataclasses
from pathlib import Path

import pytest
import torch

from bridge.sb import AutoChoices, BridgeResult, SBConfig, resolve_auto, solve_bridge
from bridge.sb.auto import FULL_COVARIANCE_MAX_DIM, LEARNING_RATES

DATA = Path(__file__).resolve().parents[1] / "data"


def _net(**kw) -> SBConfig:
    """Settings of the network family (resolve_auto takes a resolved drift family)."""
    return SBConfig(drift_family="network", **kw)


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("outer_steps", -1, ValueError),
        ("inner_steps", 0, ValueError),
        ("batch_size", 2.5, ValueError),
        ("hidden", True, ValueError),
        ("lr_inner", -1e-3, ValueError),
        ("lr_outer", float("nan"), ValueError),
        ("t_min", 0.5, ValueError),
        ("time_budget", 0, ValueError),
        ("threads", 0, ValueError),
        ("plan_count", 0, ValueError),
        ("plan_tol", 1.0, ValueError),
        ("minibatch_tol", 0, ValueError),
        ("ema", 1.0, ValueError),
        ("coupling", "sometimes", ValueError),
        ("interpolant", "spline", ValueError),
        ("drift_form", "x", ValueError),
        ("gradient_drift", "yes", ValueError),
        ("gradient_drift", 1, ValueError),
        ("refine_rounds", "two", ValueError),
        ("seed", 1.5, TypeError),
        ("diagonal", "no", TypeError),
    ],
)
def test_bad_settings_are_refused_when_the_config_is_built(field, value, error):
    with pytest.raises(error, match=f"^{field}: expected"):
        SBConfig(**{field: value})
    with pytest.raises(error, match=f"^{field}: expected"):  # replace() checks again
        dataclasses.replace(SBConfig(), **{field: value})


def test_config_dict_round_trip_ignores_unknown_keys():
    cfg = SBConfig(time_budget=60.0, coupling="independent", refine_rounds=2)
    assert SBConfig.from_dict(cfg.to_dict() | {"a_setting_of_the_future": 1}) == cfg


def _resolved(seed=0, n=300):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) + 1


def _unresolved(seed=8, n=600):
    """d = 16 at eps = 0.01: between 256 points per side a Sinkhorn row sits on about one target."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g) + 0.5


def test_auto_settings_follow_the_first_plan_with_reasons():
    x0, x1 = _resolved()
    c = resolve_auto(_net(plan_size=200), x0, x1, 0.5, torch.Generator().manual_seed(1))
    assert (c.coupling, c.gradient_drift, c.refine_rounds) == ("minibatch", False, 0)
    assert set(c.reasons) == {"coupling", "gradient_drift", "refine_rounds", "lr_inner", "lr_outer"}
    assert ">=" in c.reasons["coupling"] and (c.lr_inner, c.lr_outer) == LEARNING_RATES["network"]
    assert c.plan["plan_size"] == [200, 200] and c.plan["plan_row_ess_median"] >= 10
    x0, x1 = _unresolved()
    lines = []
    c = resolve_auto(_net(plan_size=256), x0, x1, 0.01, torch.Generator().manual_seed(1), say=lines.append)
    assert (c.coupling, c.gradient_drift, c.refine_rounds) == ("independent", True, 1)
    assert "<" in c.reasons["coupling"] and any("independent coupling" in m for m in lines)


def test_explicit_settings_are_kept_and_draw_nothing():
    """Nothing is decided (no reasons, no plan) and the generator is untouched when no setting is
    "auto", or when the coupling is known (a resumed run's)."""
    x0, x1 = _unresolved()
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    explicit = dict(coupling="sinkhorn", gradient_drift=True, refine_rounds=2, lr_inner=0.02, lr_outer=0.0)
    c = resolve_auto(_net(**explicit), x0, x1, 0.01, g)
    assert c == AutoChoices("sinkhorn", True, 2, 0.02, 0.0) and torch.equal(g.get_state(), before)
    c = resolve_auto(_net(), x0, x1, 0.01, g, coupling="independent")
    assert (c.coupling, c.gradient_drift, c.refine_rounds) == ("independent", True, 1) and "coupling" not in c.reasons
    assert torch.equal(g.get_state(), before)


def test_mixture_family_resolves_without_a_plan():
    """The mixture family's "auto" settings: the independent coupling, no refinement round, its own
    learning rates (the Brownian-bridge interpolant kept: lr_outer = 0); no random draws."""
    x0, x1 = _unresolved()
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    c = resolve_auto(SBConfig(drift_family="mixture", n_components=4), x0, x1, 0.5, g)
    assert (c.coupling, c.gradient_drift, c.refine_rounds) == ("independent", False, 0)
    assert (c.lr_inner, c.lr_outer) == LEARNING_RATES["mixture"] == (1e-2, 0.0)
    names = {"coupling", "gradient_drift", "refine_rounds", "lr_inner", "lr_outer", "mixture_covariance", "kl_share"}
    assert set(c.reasons) == names
    assert c.plan == {} and torch.equal(g.get_state(), before)
    cfg = c.apply(SBConfig(drift_family="mixture", n_components=4))
    assert "auto" not in (cfg.coupling, cfg.refine_rounds, cfg.lr_inner, cfg.lr_outer, cfg.mixture_covariance)
    assert cfg.kl_share == 0.0


@pytest.mark.parametrize(
    "d, chosen", [(2, "full"), (FULL_COVARIANCE_MAX_DIM, "full"), (FULL_COVARIANCE_MAX_DIM + 1, "diagonal")]
)
def test_mixture_covariance_auto_goes_by_dimension(d, chosen):
    """Full S_k up to FULL_COVARIANCE_MAX_DIM, diagonal above; a given covariance is kept; the
    network family leaves it as given. A solve builds and records the chosen covariance."""
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(200, d, generator=g), torch.randn(200, d, generator=g)
    c = resolve_auto(SBConfig(drift_family="mixture"), x0, x1, 0.5, g)
    assert c.mixture_covariance == chosen and chosen in c.reasons["mixture_covariance"]
    kept = resolve_auto(SBConfig(drift_family="mixture", mixture_covariance="diagonal"), x0, x1, 0.5, g)
    assert kept.mixture_covariance == "diagonal" and "mixture_covariance" not in kept.reasons
    net = resolve_auto(SBConfig(drift_family="network", coupling="independent"), x0, x1, 0.5, g)
    assert net.apply(SBConfig()).mixture_covariance == "auto"
    cfg = SBConfig(drift_family="mixture", outer_steps=2, warmup_steps=1, batch_size=32, n_components=3, log_every=0)
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
    assert res.config.mixture_covariance == res.drift_net.covariance == chosen


def test_results_record_the_resolved_settings(tmp_path):
    x0, x1 = _resolved()
    cfg = SBConfig(outer_steps=2, warmup_steps=1, batch_size=32, hidden=8, depth=1, plan_size=200, log_every=0)
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
    assert "auto" not in (res.config.coupling, res.config.gradient_drift, res.config.refine_rounds)
    assert (res.config.coupling, res.config.gradient_drift, res.config.refine_rounds) == ("minibatch", False, 0)
    assert res.coupling["coupling"] == "minibatch" and res.coupling["reason"] == res.choices["coupling"]
    res.save(tmp_path / "b.pt")
    back = BridgeResult.load(tmp_path / "b.pt")
    assert back.config == res.config and back.choices == res.choices


@pytest.mark.parametrize(
    "name, total",
    [
        # the sums of BridgeResult.sample(x0[:4], per_point=2, steps=10, generator=seed 1) on the
        # files' creation, before the solver was split into parts (their configs still say "auto")
        ("bridge_v0_minibatch.pt", -14.760491599402192),
        ("bridge_v0_independent.pt", -13.693519144165231),
    ],
)
def test_result_files_of_the_first_layout_still_load(name, total):
    res = BridgeResult.load(DATA / name)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(300, 2, generator=g, dtype=torch.float64)
    y = res.sample(x0[:4], per_point=2, steps=10, generator=torch.Generator().manual_seed(1))
    assert float(y.sum()) == pytest.approx(total, rel=1e-12, abs=1e-12)


def test_auto_coupling_falls_back_when_the_first_plan_fails(monkeypatch):
    """A first plan that does not converge (real 50-D data at small eps did) is no reason to stop:
    "auto" takes the independent coupling, which needs no plan, and says why."""
    import bridge.sb.auto as auto
    from bridge.ot import ConvergenceError

    def fails(x0, x1, eps, cfg, gen, progress=None):
        raise ConvergenceError("Sinkhorn coupling: marginal error 0.035 after 300 sweeps")

    monkeypatch.setattr(auto, "first_plan", fails)
    x0, x1 = _resolved()
    lines = []
    c = resolve_auto(_net(), x0, x1, 0.05, torch.Generator().manual_seed(0), say=lines.append)
    assert (c.coupling, c.gradient_drift, c.refine_rounds) == ("independent", True, 1)
    assert "did not converge" in c.reasons["coupling"] and any("independent coupling" in m for m in lines)


def test_the_first_plan_reports_its_sweeps(monkeypatch):
    """Choosing the coupling can take minutes on real data: the first plan's Sinkhorn sweeps are
    reported (here with progress.EVERY_S = 0, at every sweep), and the choice is the same."""
    import bridge.progress

    x0, x1 = _unresolved(n=300)
    quiet = resolve_auto(_net(plan_size=256), x0, x1, 0.01, torch.Generator().manual_seed(1))
    monkeypatch.setattr(bridge.progress, "EVERY_S", 0.0)
    lines = []
    c = resolve_auto(_net(plan_size=256), x0, x1, 0.01, torch.Generator().manual_seed(1), say=lines.append)
    assert (c.coupling, c.reasons, c.plan["plan_row_ess_median"]) == (
        quiet.coupling,
        quiet.reasons,
        quiet.plan["plan_row_ess_median"],
    )
    assert any("Sinkhorn sweeps (at most) of the first plan" in m for m in lines)
