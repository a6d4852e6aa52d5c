"""The mixture family's start on LightSB's KL objective (bridge.sb.kl_start, docs/math.md §5.16):
its setting, its "auto" choice, its fit against the closed-form Gaussian bridge, and resume."""

from types import SimpleNamespace

import pytest
import torch

import bridge.sb.kl_start as kl_module
from bridge.distributed import SINGLE
from bridge.reference import gaussian_sb
from bridge.sb import MixturePotential, SBConfig, resolve_auto, solve_bridge
from bridge.sb.auto import KL_SHARE, KL_START_MIN_DIM, LEARNING_RATES, LR_AFTER_KL_START, kl_share, learning_rates
from bridge.sb.couplings import IndependentPairs
from bridge.sb.kl_start import kl_start
from bridge.sb.state import TrainState

DT = torch.float64


@pytest.mark.parametrize("value", [-0.1, 1.0, "half", True, float("nan")])
def test_kl_share_is_checked(value):
    with pytest.raises(ValueError, match="kl_share"):
        SBConfig(drift_family="mixture", kl_share=value)


def test_auto_kl_share_by_dimension_and_explicit_values_kept():
    low, high = kl_share(SBConfig(), KL_START_MIN_DIM - 1), kl_share(SBConfig(), KL_START_MIN_DIM)
    assert low[0] == 0.0 and high[0] == KL_SHARE and "dimension" in low[1] and "dimension" in high[1]
    assert kl_share(SBConfig(kl_share=0.2), 64) == (0.2, None)
    x = torch.randn(50, KL_START_MIN_DIM, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    mix = resolve_auto(SBConfig(drift_family="mixture"), x, x + 1, 0.5, g)
    assert mix.kl_share == KL_SHARE and "kl_share" in mix.reasons and mix.apply(SBConfig()).kl_share == KL_SHARE
    net = resolve_auto(SBConfig(drift_family="network", coupling="independent"), x, x + 1, 0.5, g)
    assert net.kl_share is None and "kl_share" not in net.reasons


def test_the_mixture_rate_after_a_kl_start():
    """The drift's "auto" rate is LR_AFTER_KL_START where a start runs, the family's elsewhere;
    a rate that is set is kept, and the network family's is untouched."""
    mix = SBConfig(drift_family="mixture")
    assert learning_rates(mix, KL_START_MIN_DIM)[0] == LR_AFTER_KL_START
    assert "KL start" in learning_rates(mix, KL_START_MIN_DIM)[2]["lr_inner"]
    assert learning_rates(mix, KL_START_MIN_DIM - 1)[0] == LEARNING_RATES["mixture"][0]
    assert learning_rates(SBConfig(drift_family="mixture", kl_share=0.2), 2)[0] == LR_AFTER_KL_START
    assert learning_rates(SBConfig(drift_family="mixture", lr_inner=0.05), 64)[0] == 0.05
    assert learning_rates(SBConfig(drift_family="network"), 64)[0] == LEARNING_RATES["network"][0]


def _gaussians(n=10000, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.tensor([0.0, 1.0], dtype=DT), torch.tensor([2.0, -1.0], dtype=DT)
    A = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=DT)
    B = torch.tensor([[0.8, -0.2], [-0.2, 1.2]], dtype=DT)
    x0 = a + torch.randn(n, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(A).T
    x1 = b + torch.randn(n, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(B).T
    return x0, x1, gaussian_sb(a, A, b, B, eps=0.5), g


def test_kl_start_alone_fits_the_closed_form_gaussian_bridge():
    """One full component: LightSB's objective has the Gaussian SB as its minimiser, so the start
    alone must land at the closed form's conditional law (up to the samples' 1/sqrt(n) error)."""
    x0, x1, ref, g = _gaussians()
    pot = MixturePotential(2, 1, 0.5, covariance="full", means=x1[:1].clone())
    cfg = SBConfig(drift_family="mixture", kl_share=0.5, outer_steps=200, inner_steps=10, batch_size=512, lr_inner=1e-2)
    st = TrainState(pot, None, torch.nn.Identity(), None, None, IndependentPairs(x0, x1, g), g)
    said = []
    run = SimpleNamespace(cfg=cfg, sync=lambda s: None, clock=lambda s: 0.0, tick=lambda s: None, group=SINGLE)
    run.say = said.append
    x = torch.randn(200, 2, generator=g, dtype=DT)

    def errors():
        with torch.no_grad():
            c = pot.conditional(x)
            return (c.mean() - ref.conditional_mean(x)).abs().max(), (c.cov()[0] - ref.conditional_cov()).abs().max()

    before = errors()
    kl_start(st, run)
    after = errors()
    assert st.kl_done == 1000 and st.kl_finished and "1000 steps" in said[0]
    assert before[0] > 0.5 and after[0] < 0.1, (before, after)
    assert before[1] > 0.2 and after[1] < 0.03, (before, after)


def _data(n=300, d=3):
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 1


SMALL = dict(drift_family="mixture", outer_steps=8, warmup_steps=2, batch_size=32, n_components=3, log_every=1)


def test_a_solve_records_its_kl_start_and_zero_means_none():
    x0, x1 = _data()
    res = solve_bridge(x0, x1, 0.5, config=SBConfig(kl_share=0.5, **SMALL), progress=lambda m: None)
    assert res.coupling["kl_start"]["steps"] == round(0.5 * 8 * 10) and res.steps == 8
    none = solve_bridge(x0, x1, 0.5, config=SBConfig(kl_share=0.0, **SMALL), progress=lambda m: None)
    assert "kl_start" not in none.coupling
    changed = any(not torch.equal(p, q) for p, q in zip(res.drift_net.parameters(), none.drift_net.parameters()))
    assert changed


@pytest.mark.parametrize("where", ["during the start", "after it"])
def test_an_interrupted_solve_with_a_kl_start_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, where):
    """No checkpoint is written during the start: interrupted there, the run starts over; after
    it, the checkpoint holds the start's record and training continues exactly."""
    x0, x1 = _data()
    cfg = SBConfig(kl_share=0.5, **SMALL)
    full = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)

    class Interrupt(Exception):
        pass

    calls = {"n": 0}
    real_loss = kl_module.lightsb_loss

    def loss_that_stops(*a):
        calls["n"] += 1
        if calls["n"] == 20:
            raise Interrupt
        return real_loss(*a)

    def stop_at_5(msg):
        if "outer      5/" in msg:
            raise Interrupt

    ckpt = tmp_path / "state.pt"
    with monkeypatch.context() as m:
        if where == "during the start":
            m.setattr(kl_module, "lightsb_loss", loss_that_stops)
        progress = stop_at_5 if where == "after it" else (lambda msg: None)
        with pytest.raises(Interrupt):
            solve_bridge(x0, x1, 0.5, config=cfg, progress=progress, checkpoint=ckpt, checkpoint_every=0.0)
    assert ckpt.exists() == (where == "after it")
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None, checkpoint=ckpt, resume=True)
    assert res.coupling["kl_start"]["steps"] == full.coupling["kl_start"]["steps"]
    for p, q in zip(res.drift_net.state_dict().values(), full.drift_net.state_dict().values(), strict=True):
        assert torch.equal(p, q)
