"""``BridgeResult.sample`` at scale: the gradient drift's field against finite differences, the
step count chosen from a measured error, chunks within a memory budget with one progress count,
and ``compile=True`` against the eager drift."""

import pytest
import torch
from torch import nn

from bridge.models import MLP, GradientField
from bridge.sb import BridgeResult, SBConfig, build_drift, build_interpolant
from bridge.sb.sde import path_bytes

DT = torch.float64


def result(d=2, grad=False, dtype=DT, eps=0.5) -> BridgeResult:
    cfg = SBConfig(drift_form="u", gradient_drift=grad, hidden=16, depth=2)
    net = build_drift(cfg, d, torch.Generator().manual_seed(0)).to(dtype).eval()
    return BridgeResult(drift_net=net, interpolant=build_interpolant(cfg, d, eps), eps=eps, config=cfg)


def test_gradient_field_is_the_gradient_with_and_without_a_graph():
    # the sampling path (no_grad: no graph, detached) and the training path (create_graph) both
    # give grad_x V; central differences of V in float64 (step 1e-5: error ~1e-10) are the truth
    g = torch.Generator().manual_seed(1)
    V = MLP(3, hidden=16, depth=2, out_dim=1, generator=g).to(DT)
    field = GradientField(V)
    t, x = torch.rand(6, generator=g, dtype=DT), torch.randn(6, 3, generator=g, dtype=DT)
    h = 1e-5
    fd = torch.stack(
        [(V(t, x + h * e).squeeze(-1) - V(t, x - h * e).squeeze(-1)) / (2 * h) for e in torch.eye(3, dtype=DT)], -1
    )
    with torch.no_grad():
        sampled = field(t, x)
    trained = field(t, x.clone().requires_grad_(True))
    assert not sampled.requires_grad and trained.requires_grad
    torch.testing.assert_close(sampled, fd, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(trained.detach(), sampled)  # the same values up to rounding


def test_steps_auto_is_chosen_recorded_and_reproducible():
    res = result()
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(2), dtype=DT)
    y = res.sample(x0, per_point=3, generator=torch.Generator().manual_seed(3))  # steps="auto" by default
    reason = res.choices["sample_steps"]
    n = int(reason.split()[0])
    assert y.shape == (10, 3, 2) and 16 <= n <= 1024 and "within" in reason
    # "auto" is the pilot (drawn first from the generator) and then the fixed count
    g = torch.Generator().manual_seed(3)
    choice = res.choose_steps(x0, generator=g)
    again = res.sample(x0, per_point=3, steps=choice.steps, generator=g)
    assert choice.steps == n and torch.equal(y, again)
    with pytest.raises(ValueError, match="steps"):
        res.sample(x0, steps="fast")


def test_chunks_within_a_memory_budget_count_progress_over_all_chunks():
    res = result()
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(4), dtype=DT)
    one = res.sample(x0, per_point=3, steps=6, generator=torch.Generator().manual_seed(5))
    big = res.sample(x0, per_point=3, steps=6, generator=torch.Generator().manual_seed(5), max_bytes=2**40)
    assert torch.equal(one, big)  # a budget that fits every path: one chunk, the same draws
    per_path = path_bytes(res.drift_net, 2, DT)
    calls = []
    small = res.sample(
        x0, per_point=3, steps=6, generator=torch.Generator().manual_seed(5),
        max_bytes=16 * per_path - 1, progress=lambda k, n: calls.append((k, n)),
    )  # fmt: skip
    # 30 paths in chunks of 15: 2 chunks of 6 steps, counted as 12 steps in all
    assert small.shape == one.shape and not torch.equal(small, one)
    assert calls == [(k, 12) for k in range(1, 13)]
    # the first chunk is the first 5 rows' 15 paths, sampled first: the draws of those rows alone
    first = res.sample(x0[:5], per_point=3, steps=6, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(small[:5], first, rtol=0, atol=0)
    with pytest.raises(ValueError, match="max_bytes"):
        res.sample(x0, steps=2, max_bytes=0)


def test_chunked_trajectories_line_up():
    res = result()
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(6), dtype=DT)
    per_path = path_bytes(res.drift_net, 2, DT, trajectory_steps=4)
    out, traj = res.sample(
        x0, per_point=2, steps=4, trajectory=True, generator=torch.Generator().manual_seed(7), max_bytes=3 * per_path
    )
    assert traj.shape == (5, 5, 2, 2)
    torch.testing.assert_close(traj[-1], out, rtol=0, atol=0)
    torch.testing.assert_close(traj[0], x0[:, None].expand(5, 2, 2), rtol=0, atol=0)


def test_path_bytes_counts_the_linear_layers():
    net = nn.Sequential(nn.Linear(3, 10), nn.SiLU(), nn.Linear(10, 3))
    # 3 (10 + 3) units + 8 d, float32; a trajectory of 4 steps adds 5 d
    assert path_bytes(net, 3, torch.float32) == (39 + 24) * 4
    assert path_bytes(net, 3, torch.float64, trajectory_steps=4) == (39 + 24 + 15) * 8


@pytest.mark.slow
@pytest.mark.parametrize("grad", [False, True])
def test_compiled_drift_samples_as_the_eager_one(grad):
    # torch.compile reorders float operations: the samples agree to rounding, not bit for bit
    res = result(d=3, grad=grad, dtype=torch.float32)
    x0 = torch.randn(20, 3, generator=torch.Generator().manual_seed(8))
    eager = res.sample(x0, per_point=2, steps=10, generator=torch.Generator().manual_seed(9))
    comp = res.sample(x0, per_point=2, steps=10, generator=torch.Generator().manual_seed(9), compile=True)
    torch.testing.assert_close(comp, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_evaluation_with_auto_steps_records_the_choice():
    from bridge.sb import solve_bridge
    from bridge.sb.report import evaluate_bridge

    g = torch.Generator().manual_seed(10)
    x0, x1 = torch.randn(120, 2, generator=g), torch.randn(120, 2, generator=g) + 2
    cfg = SBConfig(outer_steps=3, inner_steps=1, warmup_steps=2, batch_size=32, hidden=8, depth=2, log_every=0)
    res = solve_bridge(x0[:80], x1[:80], eps=0.5, config=cfg)
    ev = evaluate_bridge(res, x0[80:], x1[80:], per_point=2, sde_steps="auto", sinkhorn_points=40)
    sde = ev.settings["sde"]
    assert sde["steps"] == sde["steps_choice"]["steps"] and isinstance(sde["steps"], int)
    assert "within" in sde["steps_choice"]["reason"] and ev.model_x1.shape == (40, 2)
