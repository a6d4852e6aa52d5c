"""When a Sinkhorn run gives up (bridge.convergence), and that runs which converge are unchanged.

The truths: the closed form of a geometric sequence's remaining steps; POT's own one-call Sinkhorn
(the chunked, warm-started runs of ``entropic_plan`` must equal it); and a run without the
give-up rule, which must end where the early stop says it would not converge.
"""

import math

import ot
import pytest
import torch

from bridge.convergence import GIVE_UP_FACTOR, MIN_ERRORS, hopeless, iterations_needed
from bridge.ot import POT_CHUNK, ConvergenceError, entropic_plan, entropic_potentials
from bridge.ot_online import chunked_sinkhorn


def _pair(n, d, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    return x, torch.randn(n, d, generator=g, dtype=torch.float64) * scale + 0.3


#: converges in 2811 POT iterations (several chunks) and 2022 annealed sweeps
SLOW = dict(n=100, d=3, scale=1.0, eps=0.03)
#: does not converge to 1e-6 in 20000 POT iterations (error ~1e-4 there)
STALLED = dict(n=60, d=2, scale=3.0, eps=0.002)


@pytest.mark.parametrize("every", [1, 10])
def test_iterations_needed_is_the_geometric_closed_form(every):
    q = 0.97  # error factor per record
    errors = [2.0 * q**k for k in range(40)]
    expected = math.log(1e-8 / errors[-1]) / math.log(q) * every
    assert iterations_needed(errors, every, 1e-8) == pytest.approx(expected, rel=1e-9)


def test_iterations_needed_edge_cases():
    assert iterations_needed([1.0, 0.5, 1e-9], 10, 1e-6) == 0.0  # already there
    assert iterations_needed([1.0] * 20, 10, 1e-6) == math.inf  # flat
    assert iterations_needed([1.0 + 0.01 * k for k in range(20)], 10, 1e-6) == math.inf  # rising


def test_hopeless_waits_for_records_and_applies_the_factor():
    errors = [0.9**k for k in range(MIN_ERRORS)]
    need = iterations_needed(errors, 10, 1e-6)
    assert not hopeless(errors[:-1], 10, 1e-6, left=1)  # too few records to judge
    assert hopeless(errors, 10, 1e-6, left=math.floor(need / GIVE_UP_FACTOR) - 1)
    assert not hopeless(errors, 10, 1e-6, left=math.ceil(need / GIVE_UP_FACTOR) + 1)


def test_entropic_plan_in_chunks_is_pots_one_call():
    x, y = _pair(SLOW["n"], SLOW["d"], SLOW["scale"])
    reg, m = 4 * SLOW["eps"], y.shape[0]
    res = entropic_plan(x, y, SLOW["eps"])
    a, b = x.new_full((x.shape[0],), 1 / x.shape[0]), y.new_full((m,), 1 / m)
    plan, log = ot.sinkhorn(
        a, b, ot.dist(x, y), reg=reg, method="sinkhorn_log", numItermax=10_000, stopThr=1e-6 / math.sqrt(m), log=True
    )
    assert res.n_iter == int(log["niter"]) + 1 > POT_CHUNK
    assert torch.equal(res.plan, plan)
    assert torch.equal(res.f, reg * log["log_u"]) and torch.equal(res.g, reg * log["log_v"])


def test_entropic_plan_gives_up_early_only_when_it_must_converge():
    x, y = _pair(STALLED["n"], STALLED["d"], STALLED["scale"])
    with pytest.raises(ConvergenceError, match="stopped early") as err:
        entropic_plan(x, y, STALLED["eps"], max_iter=5000)
    done = int(str(err.value).split(" after ")[1].split(" ")[0])
    assert done < 5000
    full = entropic_plan(x, y, STALLED["eps"], max_iter=5000, check=False)  # no give-up without check
    assert full.n_iter == 5000 and not full.converged and full.marginal_error > 1e-6


@pytest.mark.parametrize("solver", ["dense", "chunked"])
def test_potentials_give_up_where_the_full_run_does_not_converge(solver):
    x, y = _pair(STALLED["n"], STALLED["d"], STALLED["scale"])

    def run(**kw):
        if solver == "dense":
            return entropic_potentials(x, y, STALLED["eps"], start="anneal", tol=1e-6, check=False, **kw)
        return chunked_sinkhorn(x, y, STALLED["eps"], tol=1e-6, check=False, **kw)

    early = run(max_iter=3000, give_up_above=1e-6)
    assert early.n_iter < 3000 and not early.converged
    full = run(max_iter=3000)
    assert full.n_iter == 3000 and full.marginal_error > 1e-6  # the early stop was right
    again = run(max_iter=early.n_iter)  # the early stop is the same run, cut short
    assert torch.equal(again.f, early.f) and torch.equal(again.g, early.g)
    with pytest.raises(ConvergenceError, match="stopped early"):
        (entropic_potentials if solver == "dense" else chunked_sinkhorn)(
            x, y, STALLED["eps"], tol=1e-6, max_iter=3000, **({"start": "anneal"} if solver == "dense" else {})
        )


@pytest.mark.parametrize("solver", ["dense", "chunked"])
def test_converging_potentials_ignore_the_rule(solver):
    x, y = _pair(SLOW["n"], SLOW["d"], SLOW["scale"])
    fn = (
        (lambda **kw: entropic_potentials(x, y, SLOW["eps"], start="anneal", **kw))
        if solver == "dense"
        else (lambda **kw: chunked_sinkhorn(x, y, SLOW["eps"], **kw))
    )
    plain, ruled = fn(check=False, max_iter=4000), fn(check=False, max_iter=4000, give_up_above=1e-6)
    assert plain.converged and plain.n_iter > 10 * MIN_ERRORS  # long enough to be judged
    assert torch.equal(plain.f, ruled.f) and plain.n_iter == ruled.n_iter


# POT stops itself at 2811 iterations; at 0.021 it runs all 20000, its L1 error within tol from 19500 on
@pytest.mark.parametrize("eps", [0.03, pytest.param(0.021, marks=pytest.mark.slow)])
def test_a_plan_that_passes_its_check_is_the_plan_without_it(eps):
    x, y = _pair(SLOW["n"], SLOW["d"], SLOW["scale"])
    checked = entropic_plan(x, y, eps, max_iter=20_000)
    unchecked = entropic_plan(x, y, eps, max_iter=20_000, check=False)
    assert checked.converged and checked.n_iter == unchecked.n_iter
    assert torch.equal(checked.plan, unchecked.plan)
