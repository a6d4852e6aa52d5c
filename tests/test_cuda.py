"""The core on a CUDA device: every tensor on the data's device, results on it, and the same
numbers as on the CPU within float tolerance. Skipped, with the reason, where torch sees no GPU."""

import pytest
import torch

from bridge.ot_online import chunked_sinkhorn
from bridge.reference import make_mixture_benchmark
from bridge.sb import MixturePotential, SBConfig, solve_bridge

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TINY = dict(outer_steps=3, warmup_steps=2, batch_size=32, hidden=8, depth=1, log_every=0, coupling="independent")


def _data(d=2, n=128):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 1


@pytest.mark.parametrize("family", ["network", "mixture"])
def test_solve_and_sample_stay_on_the_device(family):
    x0, x1 = _data()
    cfg = SBConfig(drift_family=family, n_components=4, refine_rounds=0, **TINY)
    res = solve_bridge(x0.cuda(), x1.cuda(), 0.5, config=cfg, progress=lambda m: None)
    gen = torch.Generator(device="cuda").manual_seed(1)
    y = res.sample(x0[:5].cuda(), per_point=3, steps=8, generator=gen)
    assert y.device.type == "cuda" and y.shape == (5, 3, 2) and bool(torch.isfinite(y).all())


def test_mixture_drift_matches_the_cpu():
    bench = make_mixture_benchmark(3, r=1.0, generator=torch.Generator().manual_seed(0))
    pot = MixturePotential.from_mixture_benchmark(bench)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.rand(4, dtype=torch.float64).repeat_interleave(16)
    on_gpu = pot.to("cuda").drift(t.cuda(), x.cuda())
    torch.testing.assert_close(on_gpu.cpu(), bench.drift(t, x), atol=1e-9, rtol=0)


def test_chunked_plan_matches_the_cpu():
    x0, x1 = _data(d=3, n=300)
    cpu = chunked_sinkhorn(x0, x1, 0.5, tol=1e-8)
    gpu = chunked_sinkhorn(x0.cuda(), x1.cuda(), 0.5, tol=1e-8)
    assert gpu.g.device.type == "cuda"
    torch.testing.assert_close(gpu.cross_covariance().cpu(), cpu.cross_covariance(), atol=1e-6, rtol=0)
