"""Sums of pairwise distances (bridge.energy) and the energy distance at sizes beyond one block.

The tiled float32 sums are checked against the exact float64 ones, the energy distance against
an independent computation (scipy's pairwise distances, geomloss's ``SamplesLoss("energy")``, which
is half the squared energy distance), and the choice of backend by size.
"""

import pytest
import scipy.spatial.distance
import torch

import bridge.energy as energy
from bridge.energy import EXACT_PAIRS, distance_sum, energy_backend
from bridge.metrics import energy_distance

F64 = torch.float64


def pts(n, d, seed, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64) + shift


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 64 x 37 entries, so that small sets cross many tile edges in both directions."""
    monkeypatch.setattr(energy, "TILE_COLS", 37)
    monkeypatch.setattr(energy, "TILE_BYTES", 4 * 37 * 64)


def test_tiled_sum_matches_scipy_distances(small_tiles):
    x, y = pts(301, 5, 1, shift=3.0), pts(190, 5, 2, shift=3.5)  # far from 0: the common shift matters
    ref = scipy.spatial.distance.cdist(x.numpy(), y.numpy()).sum()
    # float32 distances: ~1e-7 relative each, and their sum about as accurate
    assert float(distance_sum(x, y, backend="tiled")) == pytest.approx(ref, rel=1e-6)
    assert float(distance_sum(x, y, backend="exact")) == pytest.approx(ref, rel=1e-12)


def test_tiled_energy_distance_matches_exact_numpy_and_geomloss(small_tiles):
    geomloss = pytest.importorskip("geomloss")
    x, y = pts(400, 3, 3), 0.8 * pts(350, 3, 4, shift=0.3)
    dxy = scipy.spatial.distance.cdist(x.numpy(), y.numpy()).mean()
    dxx = scipy.spatial.distance.cdist(x.numpy(), x.numpy()).mean()
    dyy = scipy.spatial.distance.cdist(y.numpy(), y.numpy()).mean()
    direct = 2 * dxy - dxx - dyy
    tiled, exact = energy_distance(x, y, backend="tiled"), energy_distance(x, y)
    peer = 2 * float(geomloss.SamplesLoss("energy")(x, y))  # geomloss: half the squared energy distance
    scale = dxy  # the terms' size: float32 rounding of each distance is ~1e-7 of it
    assert exact == pytest.approx(direct, rel=1e-10)
    assert abs(tiled - direct) < 1e-6 * scale
    assert abs(peer - direct) < 1e-6 * scale
    assert tiled > 10 * 1e-6 * scale  # the check above is not trivially met


def test_tiled_energy_distance_of_a_set_with_itself_is_rounding_only(small_tiles):
    x = pts(500, 4, 5, shift=10.0)
    assert abs(energy_distance(x, x, backend="tiled")) < 1e-5  # the diagonal's sqrt of rounding, / n^2


def test_auto_backend_is_exact_up_to_exact_pairs_then_tiled():
    side = int(EXACT_PAIRS**0.5)
    assert energy_backend(side, side).name == "exact"
    assert energy_backend(side + 1, side + 1).name == "tiled"
    assert "EXACT_PAIRS" in energy_backend(100_000, 100_000).reason
    assert energy_backend(3, 3, backend="tiled") == energy.EnergyBackend("tiled", "backend='tiled' was asked for")


def test_energy_backend_input_errors():
    with pytest.raises(ValueError, match="backend"):
        energy_backend(3, 3, backend="dense")
    with pytest.raises(ValueError, match="backend"):
        energy_distance(pts(3, 1, 0), pts(3, 1, 1), backend="fast")
    with pytest.raises(ValueError, match="n: expected a positive int"):
        energy_backend(0, 3)
