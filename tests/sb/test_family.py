"""drift_family="auto" (bridge.sb.family): the energy test, the split, and the solve that follows
the test's decision (the mixture run continued, or a network solve and the comparison of the two
families on the held-out points), resumed exactly."""

import itertools
import math
from dataclasses import replace

import pytest
import torch

from bridge.metrics import energy_distance
from bridge.sb import MixturePotential, SBConfig, family, solve_bridge
from bridge.sb.family import energy_test, network_only, split_for_test

SMALL = dict(outer_steps=12, warmup_steps=4, inner_steps=2, batch_size=32, hidden=8, depth=1, n_components=4)


def _data(n=1000, d=2):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), 0.5 * torch.randn(n, d, generator=g) + 1.0


def test_energy_statistic_is_the_energy_distance():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 3, generator=g), torch.randn(30, 3, generator=g) + 0.3
    t = energy_test(x, y, permutations=10, generator=g)
    assert t.statistic == pytest.approx(energy_distance(x, y), rel=1e-6)


def test_energy_p_value_matches_the_exact_permutation_distribution():
    """All C(10, 5) = 252 splits enumerated by brute force give the exact p-value; the Monte Carlo
    p-value is within four of its standard errors."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g) + 0.8
    pooled = torch.cat([x, y]).double()
    observed = energy_distance(x.double(), y.double())
    stats = []
    for idx in itertools.combinations(range(10), 5):
        rest = [i for i in range(10) if i not in idx]
        stats.append(energy_distance(pooled[list(idx)], pooled[rest]))
    exact = sum(s >= observed * (1 - 1e-9) for s in stats) / len(stats)
    p = 20000
    t = energy_test(x, y, permutations=p, generator=g)
    se = math.sqrt(exact * (1 - exact) / p)
    assert abs(t.p_value - exact) < 4 * se + 1.0 / p


def test_energy_test_level_and_power():
    """Under H0 the test rejects at 5% about 5% of the time (binomial bounds for 200 trials);
    a shift of half a standard deviation with 200 points per side is always detected."""
    g = torch.Generator().manual_seed(3)
    rejections = sum(
        energy_test(
            torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g), permutations=99, generator=g
        ).p_value
        < 0.05
        for _ in range(200)
    )
    assert 2 <= rejections <= 22  # mean 10, sd ~3.1
    shifted = energy_test(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 0.5, generator=g)
    assert shifted.p_value < 0.01


def test_energy_test_rejects_bad_input():
    with pytest.raises(ValueError, match="permutations"):
        energy_test(torch.randn(5, 2), torch.randn(5, 2), permutations=0)
    with pytest.raises(ValueError, match="dimension"):
        energy_test(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="y:"):
        energy_test(torch.randn(5, 2), torch.randn(1, 2))


def test_split_holds_out_disjoint_rows_deterministically():
    x0, x1 = torch.arange(3000.0).reshape(1500, 2), -torch.arange(2400.0).reshape(1200, 2)
    s, again = split_for_test(x0, x1, seed=4), split_for_test(x0, x1, seed=4)
    assert s.test0.shape[0] == s.test1.shape[0] == 120 and torch.equal(s.test0, again.test0)
    for train, test, whole in ((s.x0, s.test0, x0), (s.x1, s.test1, x1)):
        rows = torch.cat([train, test])[:, 0].sort().values
        assert torch.equal(rows, whole[:, 0].sort().values)  # a partition of the rows


def test_network_only_settings_and_small_data():
    assert network_only(SBConfig(), True, 5000, 5000).startswith("a custom interpolant")
    assert "interpolant='neural'" in network_only(SBConfig(interpolant="neural"), False, 5000, 5000)
    assert "drift_form='u'" in network_only(SBConfig(drift_form="u"), False, 5000, 5000)
    assert "gradient" in network_only(SBConfig(gradient_drift=True), False, 5000, 5000)
    assert "too few samples" in network_only(SBConfig(), False, 999, 5000)
    assert network_only(SBConfig(), False, 1000, 5000) is None


def test_small_data_solves_with_networks_and_says_why():
    x0, x1 = _data(n=300)
    res = solve_bridge(x0, x1, 0.5, config=SBConfig(**SMALL), progress=lambda m: None)
    assert res.config.drift_family == "network" and res.family["family"] == "network"
    assert "too few samples" in res.choices["drift_family"]


def _params(net):
    return [p.detach().clone() for p in net.state_dict().values()]


def _bimodal(n=1000):
    """A target of two far clusters: one Gaussian (``n_components=1``) cannot describe it."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, generator=g)
    return x0, 0.3 * torch.randn(n, 2, generator=g) + 3.0 * torch.sign(torch.randn(n, 1, generator=g))


# (test level, data, settings, family returned): the test keeps the mixture; it rejects it (level
# above 1) and the trial's mixture is still closer to the held-out targets than the tiny networks;
# it rejects it and the networks are closer, where one Gaussian cannot fit two clusters.
CASES = [
    (0.0, _data, SMALL, "mixture"),
    (1.5, _data, SMALL, "mixture"),
    (1.5, _bimodal, SMALL | dict(n_components=1, hidden=32, depth=2), "network"),
]


@pytest.mark.parametrize("level, data, settings, chosen", CASES)
def test_auto_follows_the_test(monkeypatch, tmp_path, level, data, settings, chosen):
    """Accepted: the mixture run goes on with the held-out points joined to its training samples.
    Rejected: exactly a network solve on the training part, then the family closer to the held-out
    targets (the networks, or the trial's mixture). All record the test; a resumed run keeps the
    record and repeats nothing."""
    monkeypatch.setattr(family, "TEST_LEVEL", level)
    joined = []
    join = family.join_held_out
    monkeypatch.setattr(family, "join_held_out", lambda c, s: joined.append(join(c, s)) or joined[-1])
    x0, x1 = data()
    cfg = SBConfig(**settings)
    s = split_for_test(x0, x1, cfg.seed)
    ckpt = tmp_path / "state.pt"
    lines = []
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lines.append, checkpoint=ckpt)
    assert res.config.drift_family == chosen and res.family["family"] == chosen
    assert res.family["test_points"] == 100 and res.family["trial_steps"] == 3  # 25% of 12 outer steps
    assert 0 < res.family["p_value"] <= 1 and res.choices["drift_family"] == res.family["reason"]
    assert ("pruned" in res.family) == (chosen == "mixture")  # the returned mixture's switch-off record
    assert sum("trial" in m for m in lines) == (1 if level == 0 else 2)
    if level == 0:
        ((coupling, k),) = joined
        assert k == res.family["joined"] == 100 and sum("join" in m for m in lines) == 1
        assert torch.equal(coupling.x0, torch.cat([s.x0, s.test0])) and torch.equal(
            coupling.x1, torch.cat([s.x1, s.test1])
        )
        ref = solve_bridge(s.x0, s.x1, 0.5, config=replace(cfg, drift_family="mixture"), progress=lambda m: None)
        assert isinstance(res.drift_net, MixturePotential) and "compared" not in res.family
        same = all(torch.equal(p, q) for p, q in zip(_params(res.drift_net), _params(ref.drift_net), strict=True))
        assert not same  # the joined points were drawn
        assert res.steps == ref.steps == 12
    else:
        assert not joined and family.trial_path(ckpt).is_file()
        net = solve_bridge(s.x0, s.x1, 0.5, config=replace(cfg, drift_family="network"), progress=lambda m: None)
        g = torch.Generator().manual_seed(cfg.seed + family.SEED_OFFSET)
        y = net.sample(s.test0, per_point=1, generator=g)[:, 0]
        compared = res.family["compared"]
        assert compared["network"] == pytest.approx(energy_distance(y, s.test1), rel=1e-9)
        assert compared["mixture"] == res.family["energy_distance"]
        assert (compared["mixture"] < compared["network"]) == (chosen == "mixture")
        assert res.wall_s > res.family["trial_s"]  # the trial counts as training time
        if chosen == "network":
            assert res.steps == 12
            for p, q in zip(_params(res.drift_net), _params(net.drift_net), strict=True):
                assert torch.equal(p, q)
        else:  # the trial's mixture, as the test saw it
            assert res.steps == 3 and res.stopped_by == "family_trial"
            g = torch.Generator().manual_seed(cfg.seed + family.SEED_OFFSET)
            y = res.sample(s.test0, per_point=1, generator=g)[:, 0]
            assert energy_distance(y, s.test1) == pytest.approx(compared["mixture"], rel=1e-9)
    lines.clear()
    again = solve_bridge(x0, x1, 0.5, config=cfg, progress=lines.append, checkpoint=ckpt, resume=True)
    assert again.family == res.family and not any("trial (" in m for m in lines)
    for p, q in zip(_params(again.drift_net), _params(res.drift_net), strict=True):
        assert torch.equal(p, q)


# during the trial; after the test, with the held-out points joined; during the network solve after a
# rejected trial (the trial's mixture is read back from beside the checkpoint for the comparison)
@pytest.mark.parametrize("level, stop", [(0.0, 2), (0.0, 7), (1.5, 7)])
def test_auto_resumes_an_interrupted_run_exactly(monkeypatch, tmp_path, level, stop):
    monkeypatch.setattr(family, "TEST_LEVEL", level)
    x0, x1 = _data()
    cfg = SBConfig(log_every=1, **SMALL)
    full = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)

    class Interrupt(Exception):
        pass

    def interrupt(msg):
        if f"outer {stop:6d}/" in msg:
            raise Interrupt

    ckpt = tmp_path / "state.pt"
    with pytest.raises(Interrupt):
        solve_bridge(x0, x1, 0.5, config=cfg, progress=interrupt, checkpoint=ckpt, checkpoint_every=0.0)
    res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None, checkpoint=ckpt, resume=True)
    assert res.family == full.family | {"trial_s": res.family["trial_s"]}
    for p, q in zip(_params(res.drift_net), _params(full.drift_net), strict=True):
        assert torch.equal(p, q)
