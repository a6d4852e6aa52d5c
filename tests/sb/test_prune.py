"""Switching off mixture components that the training sources do not support (bridge.sb.prune):
the counts against autograd, the pruned potential against one built without those components,
the mask through save and load, and the solver's returned potential."""

import torch

from bridge.sb import BridgeResult, MixturePotential, SBConfig, solve_bridge
from bridge.sb.prune import component_counts, prune


def _three(dtype=torch.float64):
    """Two components near the data and a light one far off with a large S_k."""
    w = torch.tensor([0.6, 0.4 - 1e-12, 1e-12], dtype=dtype)
    mu = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [3.0, -3.0]], dtype=dtype)
    S = torch.tensor([[0.3, 0.4], [0.5, 0.2], [0.5, 0.5]], dtype=dtype)
    return w, mu, S


def test_counts_are_the_logit_gradient_of_the_normaliser():
    """d/d logit_k sum_i log c(x_i) = sum_i w_k(x_i) - n alpha_k (log c = logsumexp of log alpha_k + ...,
    log alpha = log_softmax(logits)): the counts from autograd, and they sum to n."""
    w, mu, S = _three()
    pot = MixturePotential.from_components(w, mu, S, eps=0.5)
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5
    (grad,) = torch.autograd.grad(pot.log_c(x0).sum(), pot.logits)
    expected = grad + x0.shape[0] * pot.log_weights().exp()
    counts = component_counts(pot, x0)
    torch.testing.assert_close(counts, expected.detach())
    assert abs(float(counts.sum()) - 300) < 1e-9


def test_pruned_potential_is_the_mixture_without_those_components():
    w, mu, S = _three()
    pot = MixturePotential.from_components(w, mu, S, eps=0.5)
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    counts = component_counts(pot, x0)
    assert counts[2] < 1 < counts[:2].min()
    rec = prune(pot, x0, 1.0)
    assert rec == {"min_count": 1.0, "switched_off": 1, "kept": 2, "count_off": float(counts[2])}
    two = MixturePotential.from_components(w[:2] / w[:2].sum(), mu[:2], S[:2], eps=0.5)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3
    torch.testing.assert_close(pot.log_c(x), two.log_c(x))
    torch.testing.assert_close(pot.log_v(x), two.log_v(x))
    torch.testing.assert_close(pot.drift(0.3, x), two.drift(0.3, x))
    torch.testing.assert_close(pot.conditional(x).mean(), two.conditional(x).mean())
    assert torch.equal(pot.conditional_log_weights(x)[:, 2], torch.full((64,), -torch.inf, dtype=torch.float64))
    y = pot.sample(x, 50, generator=torch.Generator().manual_seed(3))
    assert bool(torch.isfinite(y).all()) and y.shape == (64, 50, 2)


def test_the_component_with_the_largest_count_stays():
    w, mu, S = _three()
    pot = MixturePotential.from_components(w, mu, S, eps=0.5)
    x0 = torch.zeros(10, 2, dtype=torch.float64)
    rec = prune(pot, x0, 1e9)
    assert (rec["switched_off"], rec["kept"]) == (2, 1)
    assert pot.active.tolist() == [True, False, False]
    torch.testing.assert_close(pot.log_weights().exp().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_mask_survives_state_dicts_and_old_ones_load_with_all_on():
    w, mu, S = _three()
    pot = MixturePotential.from_components(w, mu, S, eps=0.5)
    prune(pot, torch.zeros(100, 2, dtype=torch.float64), 1.0)
    again = MixturePotential(2, 3, eps=0.5, dtype=torch.float64)
    again.load_state_dict(pot.state_dict())
    assert again.active.tolist() == [True, True, False]
    old = {k: v for k, v in pot.state_dict().items() if k != "active"}
    again.load_state_dict(old)
    assert again.active.tolist() == [True, True, True]


def _solve(x0, x1, min_count, tmp_path=None):
    cfg = SBConfig(
        drift_family="mixture", n_components=12, outer_steps=30, warmup_steps=5, inner_steps=2, batch_size=64,
        seed=3, min_component_count=min_count,
    )  # fmt: skip
    return solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)


def test_solver_returns_the_pruned_potential_and_its_record(tmp_path):
    """The same training with and without switching off: equal parameters; the mask is exactly
    the components whose counts over the training sources (of the unpruned result) fall below the
    threshold; the record says so, and the saved result keeps the mask."""
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(400, 2, generator=g), 0.3 * torch.randn(400, 2, generator=g) + 2.0
    full, pruned = _solve(x0, x1, 0.0), _solve(x0, x1, 30.0)
    assert "pruned" not in full.family and bool(full.drift_net.active.all())
    a, b = full.drift_net.state_dict(), pruned.drift_net.state_dict()
    for k in ("logits", "means", "raw_cov"):
        assert torch.equal(a[k], b[k])
    counts = component_counts(full.drift_net, x0)
    off = counts < 30.0
    assert 0 < int(off.sum()) < 12
    assert pruned.drift_net.active.tolist() == (~off).tolist()
    rec = pruned.family["pruned"]
    assert (rec["switched_off"], rec["kept"]) == (int(off.sum()), int((~off).sum()))
    assert abs(rec["count_off"] - float(counts[off].sum())) < 1e-6
    pruned.save(tmp_path / "res.pt")
    assert BridgeResult.load(tmp_path / "res.pt").drift_net.active.tolist() == (~off).tolist()
