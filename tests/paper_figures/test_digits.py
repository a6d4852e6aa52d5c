"""Helpers of paper_figures/digits.py against toy sets with known answers."""

import math
import sys

import numpy as np
import pytest

from paper_figures import digits


def test_nearest_neighbours_on_a_grid():
    # reference: the integer lattice {0..4}^2; a query at (i + 0.3, j - 0.2) has its nearest
    # lattice point at (i, j), at distance sqrt(0.3^2 + 0.2^2)
    ref = np.array([(i, j) for i in range(5) for j in range(5)], dtype=float)
    rng = np.random.default_rng(0)
    ij = rng.integers(0, 5, size=(50, 2))
    q = ij + np.array([0.3, -0.2])
    dist, idx = digits.nearest_neighbours(q, ref, chunk=7)  # chunk < m: exercises the chunking
    np.testing.assert_allclose(dist, math.hypot(0.3, 0.2), rtol=1e-12)
    np.testing.assert_array_equal(ref[idx], ij)


def test_nearest_neighbours_exact_copy_has_distance_zero():
    # a copy of a reference point far from the origin: the expanded |q|^2 - 2 q.r + |r|^2 form
    # alone would give sqrt(rounding error) ~ 1e-6 here, not 0
    rng = np.random.default_rng(1)
    ref = 1e3 + rng.normal(size=(20, 64))
    dist, idx = digits.nearest_neighbours(ref[[3, 11]], ref)
    np.testing.assert_array_equal(idx, [3, 11])
    np.testing.assert_array_equal(dist, [0.0, 0.0])


def test_nearest_neighbours_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="queries, reference"):
        digits.nearest_neighbours(np.zeros((3, 2)), np.zeros((4, 3)))


def test_mean_pairwise_distance_known_groups():
    # group 0: K scaled basis vectors a e_i, every pair at distance a sqrt(2);
    # group 1: K copies of one point, distance 0;
    # group 2: points 0, 1, 3 on a line: pairs 1, 3, 2, mean 2
    k, d, a = 3, 5, 2.5
    g0 = a * np.eye(d)[:k]
    g1 = np.tile(np.arange(d, dtype=float), (k, 1))
    g2 = np.zeros((k, d))
    g2[:, 0] = [0.0, 1.0, 3.0]
    out = digits.mean_pairwise_distance(np.stack([g0, g1, g2]))
    np.testing.assert_allclose(out, [a * math.sqrt(2.0), 0.0, 2.0], atol=1e-12)


def test_mean_pairwise_distance_needs_two_per_group():
    with pytest.raises(ValueError, match="K >= 2"):
        digits.mean_pairwise_distance(np.zeros((4, 1, 3)))


def test_time_pieces_respect_the_courant_limit_and_cover_the_interval():
    eps, courant = 4.0, 0.5
    rate = lambda t: eps / (1.0 - t) ** 2  # noqa: E731 - the one-sided linear score stiffness
    breaks = digits.geometric_breaks(0.97, 0.0, end=1.0)
    pieces = digits.time_pieces(breaks, rate, courant, max_dt=0.05)
    assert pieces[0][0] == 0.0 and pieces[-1][1] == 0.97
    for (a, b, n), (a2, _, _) in zip(pieces, pieces[1:] + [(0.97, None, None)]):
        assert b == a2  # contiguous
        dt = (b - a) / n
        assert dt <= 0.05 + 1e-12
        assert max(rate(a), rate(b)) * dt <= courant + 1e-12
        # the fewest such steps: one fewer would break a limit
        if n > 1:
            dt1 = (b - a) / (n - 1)
            assert max(rate(a), rate(b)) * dt1 > courant or dt1 > 0.05


def test_geometric_breaks_distances_shrink_geometrically():
    br = digits.geometric_breaks(0.97, 0.0, end=1.0, ratio=2.0)
    dist = 1.0 - np.array(br)
    assert br[0] == 0.0 and br[-1] == 0.97 and np.all(np.diff(br) > 0)
    ratios = dist[:-1] / dist[1:]
    assert np.all(ratios <= 2.0 + 1e-9) and np.all(ratios > 1.0)
    # the left half of the symmetric mirror grid: distances to t = 0 grow from t_min to 1/2
    left = digits.geometric_breaks(1e-3, 0.5, end=0.0, ratio=2.0)
    assert left[0] == 1e-3 and left[-1] == 0.5
    assert np.all(np.array(left[1:]) / np.array(left[:-1]) <= 2.0 + 1e-9)


def test_scale_pixels_maps_0_16_to_unit_interval():
    np.testing.assert_allclose(digits.scale_pixels(np.array([0, 8, 16])), [-1.0, 0.0, 1.0])


def test_mosaic_places_images_row_major():
    ims = np.arange(3)[:, None] * np.ones((3, 64))
    m = digits.mosaic(ims, cols=2)
    assert m.shape == (17, 17)
    assert m[0, 0] == 0 and m[0, 9] == 1 and m[9, 0] == 2
    assert np.isnan(m[8, 0]) and np.isnan(m[9, 9])  # padding and the empty tile


def test_missing_sklearn_gives_one_line_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    with pytest.raises(SystemExit) as err:
        digits.require_sklearn()
    msg = str(err.value)
    assert "\n" not in msg and "pip install scikit-learn" in msg


def test_digits_split_is_scaled_and_disjoint():
    pytest.importorskip("sklearn")
    x_tr, y_tr, x_te, y_te = digits.load_digits_split(100, seed=0)
    assert x_tr.shape == (1697, 64) and x_te.shape == (100, 64)
    assert x_tr.min() == -1.0 and x_tr.max() == 1.0
    assert set(np.unique(y_te)) <= set(range(10))
    # no test image appears in the training set (up to the few exact duplicates in the data)
    dist, _ = digits.nearest_neighbours(x_te, x_tr)
    assert (dist == 0).mean() < 0.05


def _record(diversity, nn_ratio, ode_err, move, same_class):
    """A synthetic record in the shape compute() writes (the numbers are made up)."""
    one = {"train_wall_s": 1.0}
    for e, d in zip(digits.EPS_ONE_SIDED, diversity):
        one[f"eps={e:g}"] = {
            "diversity_mean": d,
            "diversity_se": 0.1,
            "independent_spread": 6.0,
            "nn_ratio_to_test": nn_ratio,
            "near_copy_fraction": 0.0,
        }
    sde = {
        f"eps={e:g}": {"distance_to_input_mean": move, "same_class_fraction": same_class}
        for e in digits.EPS_MIRROR_SWEEP
    }
    mirror = {
        "ode_reconstruction_error_mean": ode_err,
        "ode_error_over_input_nn_dist": ode_err / 2.0,
        "input_to_random_train_digit_mean": 6.0,
        "sde": sde,
    }
    return {
        "one_sided": {"linear": one, "trig": dict(one)},
        "mirror": mirror,
        "test": {"nn_dist_mean": 2.0},
        "notes": [],
    }


def test_findings_hold_on_a_record_that_meets_every_criterion():
    rec = _record(diversity=[0.0, 3.0, 4.0, 5.0], nn_ratio=1.2, ode_err=0.05, move=3.0, same_class=0.8)
    assert all(digits._findings(rec).values())
    assert rec["notes"] == [] and set(rec["criteria"]) == set(digits._findings(rec))


def test_findings_fail_where_the_numbers_say_so():
    # diversity that drops, memorised samples, an ODE that moves, an SDE that jumps to another class
    rec = _record(diversity=[0.0, 5.0, 3.0, 5.1], nn_ratio=0.5, ode_err=0.5, move=5.9, same_class=0.1)
    f = digits._findings(rec)
    assert not any(f.values())
    assert any("does not grow" in n for n in rec["notes"])
    assert any("mirror SDE" in n for n in rec["notes"])


@pytest.mark.parametrize(
    "d, se, grows",
    [
        ([0.0, 3.0, 4.0, 5.0], 0.1, True),  # strictly rising
        ([0.0, 5.0, 4.9, 5.1], 0.1, True),  # saturated: the dip 5.0 -> 4.9 is within 2 standard errors
        ([0.0, 5.0, 4.0, 5.1], 0.1, False),  # a drop of 10 standard errors
        ([1.0, 1.1, 1.2, 1.25], 0.1, False),  # the rise 0.25 is within 2 combined standard errors (0.28)
    ],
)
def test_diversity_grows_criterion(d, se, grows):
    points = [{"diversity_mean": x, "diversity_se": se} for x in d]
    assert digits._diversity_grows(points) is grows
