"""What `bridge solve` reports can be taken at its word: the noise floor is measured at the sizes
of the model's numbers, an L2-UVP is never negative, and the figures say in words what they show.

| check                                                    | tolerance                | reason                                                          |
|----------------------------------------------------------|--------------------------|-----------------------------------------------------------------|
| floor = the model's metric on n target points (one set)  | 1e-12 relative           | the same function on the same rows                               |
| model sampling the target vs the floor, every metric     | 4 standard errors        | 8 model draws and 5 floor sets of n points; SE from the spread   |
"""

import math
import re

import matplotlib
import pytest
import torch

from bridge.metrics import barycentric_map_error, energy_distance, w2
from bridge.ot import entropic_plan
from bridge.sb import SBConfig, solve_bridge
from bridge.sb.report import evaluate_bridge, write_figures

EPS = 0.5


@pytest.fixture(scope="module")
def tiny():
    """A barely trained bridge between N(0, I) and N((2, 2), I), and held-out points of both."""
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(1400, 2, generator=g), torch.randn(1400, 2, generator=g) + 2
    cfg = SBConfig(outer_steps=3, inner_steps=1, warmup_steps=2, batch_size=32, hidden=8, depth=2, log_every=1)
    res = solve_bridge(x0[:200], x1[:200], EPS, config=cfg, progress=lambda m: None)
    return res, x0[200:], x1[200:]


def _evaluate(res, x0, x1, floor, **kw):
    opts = dict(per_point=2, sde_steps=10, sinkhorn_points=50, generator=torch.Generator().manual_seed(0))
    return evaluate_bridge(res, x0, x1, x1_floor=floor, **{**opts, **kw})


def test_noise_floor_is_measured_at_the_model_sample_size(tiny):
    """n = 30 model points against m = 90 held-out targets: the floor scores 30 target points
    against the same 90, not 90 (a V-statistic's bias depends on the sizes)."""
    res, x0, x1 = tiny
    floor = x1[200:240]  # 40 independent target points: room for one set of 30
    ev = _evaluate(res, x0[:30], x1[:90], floor)
    marg = ev.metrics["marginal"]
    held = ev.x1
    want = energy_distance(floor[:30].double(), held)
    assert marg["noise_floor"]["energy_distance"] == pytest.approx(want, rel=1e-12)
    assert marg["noise_floor"]["w2"] == pytest.approx(w2(floor[:30].double(), held, max_samples=None), rel=1e-12)
    assert marg["sizes"]["model"] == marg["sizes"]["noise_floor"] == [30, 90]
    assert marg["noise_floor_sets"] == 1 and marg["noise_floor_spread"]["energy_distance"] is None


def test_a_model_that_samples_the_target_scores_at_the_floor(tiny, monkeypatch):
    """Replace the bridge's SDE by draws from the target itself: for every marginal metric, its
    scores (one draw each) sit within the floor's spread of the floor, on average over draws."""
    res, x0, x1 = tiny
    n, m = 40, 100
    g = torch.Generator().manual_seed(7)

    def target_itself(x, *, per_point=1, trajectory=False, **kw):
        end = torch.randn(x.shape[0], per_point, 2, generator=g) + 2
        return (end, end.expand(kw["steps"] + 1, -1, -1, -1).clone()) if trajectory else end

    monkeypatch.setattr(res, "sample", target_itself)
    runs = [_evaluate(res, x0[:n], x1[:m], x1[m:]).metrics["marginal"] for _ in range(8)]
    floor, spread = runs[0]["noise_floor"], runs[0]["noise_floor_spread"]
    assert runs[0]["noise_floor_sets"] == 5 and runs[0]["sizes"] == {"model": [n, m], "noise_floor": [n, m]}
    for key in floor:
        model = sum(r["model"][key] for r in runs) / len(runs)
        se = spread[key] * math.sqrt(1 / len(runs) + 1 / 5)  # 8 model draws, 5 floor sets
        assert abs(model - floor[key]) < 4 * se, key


def test_no_negative_l2_uvp_and_the_report_says_why(tiny, monkeypatch):
    """K samples around POT's own barycentric map: the estimate with the K-sample noise removed
    comes out below zero; the report gives 0 and keeps the raw value in a note."""
    res, x0, x1 = tiny
    a, b = x0[:50].double(), x1[:50].double()
    t_map = entropic_plan(a, b, EPS).barycentric_map()
    tr = float(torch.cov(b.T).trace())
    for seed in range(50):  # the first noise whose noise-corrected estimate is negative
        ys = t_map[:, None] + torch.randn(50, 2, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        raw = barycentric_map_error(ys, t_map, tr, unbiased=True)
        if raw < 0:
            break
    assert raw < 0
    real = res.sample
    monkeypatch.setattr(
        res, "sample", lambda x, *, per_point=1, **kw: real(x, per_point=1, **kw) if kw.get("trajectory") else ys
    )
    cp = _evaluate(res, x0[:50], x1[:50], None).metrics["coupling"]
    assert cp["barycentric_map_l2_uvp"] == 0.0
    assert cp["barycentric_map_l2_uvp_unclipped"] == pytest.approx(raw, rel=1e-12)
    assert f"{raw:.3g}" in cp["barycentric_map_l2_uvp_note"]


#: An equation reference where a reader expects words ("SI 3.39", "Eq. 12", "(2.33)").
EQUATION_REF = re.compile(r"\bSI\b|\bEq\.|\(\d+\.\d+\)")


def figure_texts(monkeypatch) -> list:
    """Record every title, axis label and legend entry of the figures saved from now on."""
    from matplotlib.figure import Figure

    seen, save = [], Figure.savefig

    def record(fig, *args, **kwargs):
        texts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
        for ax in fig.axes:
            texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
            texts += [t.get_text() for leg in [ax.get_legend()] if leg is not None for t in leg.get_texts()]
        seen.append([t for t in texts if t])
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return seen


def test_solve_figures_have_titles_in_words(tiny, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    res, x0, x1 = tiny
    seen = figure_texts(monkeypatch)
    write_figures(_evaluate(res, x0[:40], x1[:40], x1[40:]), res, tmp_path)
    assert len(seen) == 4
    for texts in seen:
        assert not [t for t in texts if EQUATION_REF.search(t)], texts
    history = " ".join(seen[3])
    assert "max–min objective" in history and "kinetic energy" in history and "outer step" in history
