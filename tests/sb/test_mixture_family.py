"""The mixture-potential drift family of ``solve_bridge`` (docs/math.md §5.10-5.11): settings, the
``"auto"`` choice it makes, resume, save and load."""

import pytest
import torch

from bridge.sb import BridgeResult, MixturePotential, SBConfig, build_drift, resolve_auto, solve_bridge

SMALL = dict(outer_steps=12, warmup_steps=3, batch_size=32, log_every=1, n_components=4, val_size=100)


def _data(seed=2, n=300, d=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 1


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(drift_family="potential"), "drift_family"),
        (dict(drift_family="mixture", mixture_covariance="spherical"), "mixture_covariance"),
        (dict(drift_family="mixture", n_components=0), "n_components"),
        (dict(drift_family="mixture", drift_form="u"), "drift_form"),
        (dict(drift_family="mixture", gradient_drift=True), "gradient_drift"),
    ],
)
def test_mixture_settings_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        SBConfig(**kw)


def test_auto_gradient_drift_is_off_for_the_mixture_family_with_its_reason():
    x0, x1 = _data()
    g = torch.Generator().manual_seed(0)
    c = resolve_auto(SBConfig(drift_family="mixture", coupling="independent"), x0, x1, 0.5, g)
    assert c.gradient_drift is False and "gradient by construction" in c.reasons["gradient_drift"]


def test_mixture_drift_starts_at_target_samples_and_network_draws_are_unchanged():
    """The mixture's means are K distinct training targets, S_k = I; passing x1 and eps to the
    network family changes nothing it draws."""
    x0, x1 = _data()
    pot = build_drift(SBConfig(drift_family="mixture", n_components=5), 2, torch.Generator(), x1=x1, eps=0.5)
    assert isinstance(pot, MixturePotential) and pot.covariance == "full"  # "auto" in d = 2
    assert all(any(torch.equal(m, y) for y in x1) for m in pot.means)
    assert torch.equal(pot.cov_matrix(), torch.eye(2).expand(5, 2, 2))
    cfg = SBConfig(hidden=8, depth=1)
    a = build_drift(cfg, 2, torch.Generator().manual_seed(3))
    b = build_drift(cfg, 2, torch.Generator().manual_seed(3), x1=x1, eps=0.5)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("coupling, holdout", [("minibatch", 0.0), ("independent", 0.2)])
def test_mixture_resume_after_interruption_continues_exactly(tmp_path, coupling, holdout):
    """As for the network family (test_solver.py): an interrupted mixture solve resumes to the
    uninterrupted result (EMA, validation, refinement included)."""
    x0, x1 = _data()
    cfg = SBConfig(
        drift_family="mixture",
        coupling=coupling,
        holdout=holdout,
        val_every=2,
        refine_pairs=200,
        refine_sde_steps=4,
        refine_share=0.75,
        **SMALL,
    )
    full = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)

    class Interrupt(Exception):
        pass

    def stop_at_7(msg):
        if "outer      7/" in msg:
            raise Interrupt

    ckpt = tmp_path / "state.pt"
    with pytest.raises(Interrupt):
        solve_bridge(x0, x1, 0.5, config=cfg, progress=stop_at_7, checkpoint=ckpt, checkpoint_every=0.0)
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None, checkpoint=ckpt, resume=True)
    assert res.steps == 12 and isinstance(res.drift_net, MixturePotential)
    for a, b in ((res.drift_net, full.drift_net), (res.interpolant, full.interpolant)):
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q)
    assert [c["val_loss"] for c in res.validation.get("curve", [])] == [
        c["val_loss"] for c in full.validation.get("curve", [])
    ]


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_mixture_result_saves_and_loads(tmp_path, covariance):
    x0, x1 = _data(d=3)
    cfg = SBConfig(drift_family="mixture", mixture_covariance=covariance, coupling="independent", **SMALL)
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
    assert res.dim == 3 and res.config.gradient_drift is False
    res.save(tmp_path / "bridge.pt")
    back = BridgeResult.load(tmp_path / "bridge.pt")
    assert isinstance(back.drift_net, MixturePotential) and back.drift_net.covariance == covariance
    assert back.config.drift_family == "mixture" and back.dim == 3
    t, x = torch.rand(5), torch.randn(5, 3)
    with torch.no_grad():
        assert torch.equal(back.drift(t, x), res.drift(t, x))


def _mixture_result(d=2, eps=0.5):
    """A result holding a fixed two-component mixture potential (float64)."""
    from bridge.sb import build_interpolant

    g = torch.Generator().manual_seed(4)
    means = torch.randn(2, d, generator=g, dtype=torch.float64)
    covs = 0.5 + torch.rand(2, d, generator=g, dtype=torch.float64)
    pot = MixturePotential.from_components(torch.tensor([0.3, 0.7], dtype=torch.float64), means, covs, eps=eps)
    cfg = SBConfig(drift_family="mixture", n_components=2)
    return BridgeResult(drift_net=pot, interpolant=build_interpolant(cfg, d, eps), eps=eps, config=cfg)


def _agree(a, b, z=4.0):
    """Means and variances (per coordinate) of two independent samples agree within ``z`` standard
    errors of their difference (estimated from the samples)."""
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    for f in (lambda x: x, lambda x: (x - x.mean(0)) ** 2):
        fa, fb = f(a), f(b)
        se = (fa.var(0) / fa.shape[0] + fb.var(0) / fb.shape[0]).sqrt()
        assert ((fa.mean(0) - fb.mean(0)).abs() <= z * se).all(), (fa.mean(0), fb.mean(0), se)


# (time, SDE steps): why: the end-refined grid's Heun bias at 100 steps is far below 4 standard
# errors of 4000 samples (docs/math.md §3); the same at an intermediate time.
@pytest.mark.parametrize("time", [1.0, 0.5])
def test_exact_mixture_samples_agree_with_the_sde(time):
    res = _mixture_result()
    assert res.sampling_method() == "exact" and res.sampling_method("sde") == "sde"
    x0 = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    exact = res.sample(x0, per_point=2000, time=time, generator=g)
    sde = res.sample(x0, per_point=2000, time=time, steps=100, method="sde", generator=g)
    for i in range(2):
        _agree(exact[i], sde[i])


def test_network_samples_at_an_intermediate_time_follow_the_sde_stopped_there():
    """``time=0.5`` on the end-refined grid scaled to 0.5 against the uniform-grid trajectory's
    state at t = 0.5 (grid point 50 of 100); and on the uniform grid the first 50 steps are the
    trajectory's own, draw for draw."""
    x0, x1 = _data(seed=5, n=200)
    cfg = SBConfig(outer_steps=3, warmup_steps=2, batch_size=32, hidden=8, depth=1, log_every=0)
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
    assert res.sampling_method() == "sde"
    with pytest.raises(ValueError, match="exact"):
        res.sample(x0[:1], method="exact")
    pts = x0[:2]
    _, traj = res.sample(
        pts, per_point=2000, steps=100, grid="uniform", trajectory=True, generator=torch.Generator().manual_seed(1)
    )
    half = res.sample(
        pts, per_point=2000, steps=50, grid="uniform", time=0.5, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(half, traj[50])
    end = res.sample(pts, per_point=2000, steps=50, time=0.5, generator=torch.Generator().manual_seed(2))
    for i in range(2):
        _agree(end[i], traj[50][i])


@pytest.mark.parametrize("time", [0.0, 1.5, True])
def test_sample_time_is_checked(time):
    with pytest.raises(ValueError, match="time"):
        _mixture_result().sample(torch.zeros(1, 2, dtype=torch.float64), time=time)


def test_refinement_pairs_of_a_mixture_drift_are_exact_draws():
    """Coupling refinement draws a mixture drift's pairs from its exact conditional, not the SDE:
    the same draws as ``MixturePotential.sample`` with the same generator state."""
    from bridge.sb import MixturePotential
    from bridge.sb.refine import sde_pairs

    g = torch.Generator().manual_seed(0)
    pot = MixturePotential(2, 3, eps=0.5, generator=g)
    x0 = torch.randn(50, 2, generator=g)
    xa, xb = sde_pairs(pot, x0, 40, 0.5, 25, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    ya = x0[torch.randint(0, 50, (40,), generator=gen)]
    with torch.no_grad():
        yb = pot.sample(ya, generator=gen)[:, 0]
    assert torch.equal(xa, ya) and torch.equal(xb, yb)
