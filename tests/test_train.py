"""A short training run recovers b and s of a Gaussian -> Gaussian-mixture problem (docs/math.md §2, §7).

The learned fields are compared with the exact ones in the L2(rho_t) norm,

    err_f = E_{t ~ U[0.05, 0.95], x ~ rho_t} |f^(t,x) - f*(t,x)|^2 / E |f*(t,x)|^2,

and the tolerance explains itself by a baseline from the same closed form: the exact field of
the moment-matched *Gaussian* target (the best a model blind to the two modes can do), which
scores 33% (b) and 22% (s). The trained model must be 5x below that baseline and below an
absolute 5%. This budget (600 steps, batch 256) measured 2.1% (b) and 1.7% (s) when written,
so the bound leaves ~2.5x room for platform differences while still failing any model that
has not resolved the two modes (a 1500-step run reaches 0.5%).
"""

import pytest
import torch

from bridge.interpolants import Linear
from bridge.reference import GaussianMixture, InterpolantOracle, gaussian, standard_normal
from bridge.train import check_field_set, train_fields

DT = torch.float32


def _problem():
    rho0 = standard_normal(2, dtype=torch.float64)
    rho1 = GaussianMixture(
        weights=torch.tensor([0.5, 0.5], dtype=torch.float64),
        means=torch.tensor([[-1.5, 0.0], [1.5, 0.5]], dtype=torch.float64),
        covs=0.15 * torch.eye(2, dtype=torch.float64).expand(2, 2, 2).clone(),
    )
    return rho0, rho1


def _rel_err(f_hat, f_star, t, x):
    with torch.no_grad():
        a = f_hat(t.to(DT), x.to(DT)).double()
    b = f_star(t, x)
    return float((a - b).pow(2).sum(-1).mean() / b.pow(2).sum(-1).mean())


@pytest.mark.slow
def test_training_recovers_b_and_s():
    interp = Linear()
    rho0, rho1 = _problem()
    g = torch.Generator().manual_seed(0)
    x0 = rho0.sample(20000, generator=g).to(DT)
    x1 = rho1.sample(20000, generator=g).to(DT)
    res = train_fields(
        interp, x0, x1, fields=("b", "s"), steps=600, batch_size=256, hidden=64, depth=3, lr=3e-3, seed=0, log_every=0
    )
    exact = InterpolantOracle(interp, rho0, rho1)
    blind = InterpolantOracle(interp, rho0, gaussian(rho1.mean(), rho1.cov()))
    # evaluation points: 4000 draws of (t, x_t) from the exact marginals, t in [0.05, 0.95]
    n = 4000
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=torch.float64)
    xt = interp.x_t(
        t, rho0.sample(n, generator=g), rho1.sample(n, generator=g), torch.randn(n, 2, generator=g, dtype=torch.float64)
    )
    err_b = _rel_err(res.fields.drift, exact.b, t, xt)
    err_s = _rel_err(res.fields.score, exact.s, t, xt)
    base_b = float((blind.b(t, xt) - exact.b(t, xt)).pow(2).sum(-1).mean() / exact.b(t, xt).pow(2).sum(-1).mean())
    base_s = float((blind.s(t, xt) - exact.s(t, xt)).pow(2).sum(-1).mean() / exact.s(t, xt).pow(2).sum(-1).mean())
    print(
        f"relative L2 errors: b {err_b:.4f} (Gaussian-blind baseline {base_b:.4f}), "
        f"s {err_s:.4f} (baseline {base_s:.4f})"
    )
    assert err_b < 0.05 and err_b < base_b / 5
    assert err_s < 0.05 and err_s < base_s / 5


def test_training_is_deterministic_for_a_seed():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 1.0
    kw = dict(fields=("b", "eta"), steps=5, batch_size=32, hidden=8, depth=1, seed=3, log_every=0)
    r1, r2 = train_fields(Linear(), x0, x1, **kw), train_fields(Linear(), x0, x1, **kw)
    for f in ("b", "eta"):
        for p, q in zip(r1.models[f].parameters(), r2.models[f].parameters()):
            assert torch.equal(p, q)
    state = torch.random.get_rng_state()
    train_fields(Linear(), x0, x1, **kw)
    assert torch.equal(state, torch.random.get_rng_state()), "training must not touch the global RNG"


def test_time_budget_stops_training():
    x = torch.randn(100, 2)
    res = train_fields(Linear(), x, x + 1, steps=10**6, time_budget=0.5, batch_size=16, hidden=8, depth=1, log_every=0)
    assert res.stopped_by == "time_budget" and 0 < res.steps < 10**6


def test_training_continues_from_a_results_averaged_models():
    """The returned moving averages have requires_grad off; passing them back trains them on
    (the loss falls), not an error."""
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 1.0
    kw = dict(fields=("b", "eta"), batch_size=64, hidden=8, depth=1, seed=3, log_every=0)
    first = train_fields(Linear(), x0, x1, steps=20, **kw)
    before = {f: [p.detach().clone() for p in m.parameters()] for f, m in first.models.items()}
    more = train_fields(Linear(), x0, x1, steps=20, models=first.models, **kw)
    moved = [not torch.equal(p, q) for f in before for p, q in zip(before[f], more.models[f].parameters())]
    assert all(moved)


def test_progress_output():
    lines = []
    x = torch.randn(100, 2)
    train_fields(Linear(), x, x + 1, steps=4, batch_size=16, hidden=8, depth=1, log_every=2, progress=lines.append)
    assert len(lines) == 3 and "L_b=" in lines[-1] and "L_s=" in lines[-1]


def test_bad_field_sets_and_inputs():
    from bridge.interpolants import OneSidedLinear, ZeroGamma

    with pytest.raises(ValueError, match="not a supported combination"):
        check_field_set("b,v", Linear())
    with pytest.raises(ValueError, match="latent noise"):
        check_field_set("b,s", Linear(ZeroGamma()))
    with pytest.raises(ValueError, match="one-sided or mirror"):
        check_field_set("eta", Linear())
    assert check_field_set("eta", OneSidedLinear()) == ("eta",)
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="dimension"):
        train_fields(Linear(), x, torch.randn(10, 3), steps=1)
    with pytest.raises(ValueError, match="NaN"):
        train_fields(Linear(), x, torch.full((10, 2), float("nan")), steps=1)
