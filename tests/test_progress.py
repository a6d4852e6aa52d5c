"""Progress lines: the throttled reporter (on a fake clock) and the samplers' and likelihood
estimators' per-step callbacks, which must leave every random draw as it was."""

import pytest
import torch

from bridge.progress import Progress, format_seconds


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_throttles_and_estimates_the_time_left():
    clock, lines = FakeClock(), []
    p = Progress(1000, "sample", lines.append, unit="samples", every_s=10.0, clock=clock)
    clock.now += 4.0
    p.update(100)  # 4 s after the start: too soon
    assert lines == []
    clock.now += 8.0
    p.update(300)  # 12 s in: 300 done, 700 to go at 25 per s = 28 s
    assert lines == ["[sample] 300/1000 samples (30%), 12.0 s, ~28 s left"]
    clock.now += 5.0
    p.update(400)  # 5 s after the last line: too soon
    clock.now += 5.0
    p.update(500)  # 10 s after it: 22 s for 500, 22 s left
    assert lines[-1] == "[sample] 500/1000 samples (50%), 22.0 s, ~22 s left" and len(lines) == 2
    clock.now += 98.0
    p.update(1000)
    assert lines[-1] == "[sample] 1000/1000 samples (100%), 2 min 00 s, done"


def test_progress_parts_budget_and_zero_interval():
    clock, lines = FakeClock(), []
    p = Progress(40, "solve", lines.append, unit="steps", every_s=0.0, clock=clock, budget_s=30.0)
    step = p.part(10, 20)  # the second quarter to the third of the work, reported per step of 4
    clock.now += 20.0
    step(2, 4)  # 10 + 20 * 2/4 = 20 of 40 in 20 s: 20 s left by rate, 10 s by the budget
    assert lines == ["[solve] 20/40 steps (50%), 20.0 s, ~10 s left"]
    p.update(0)
    assert lines[-1].endswith("time left unknown")
    p.touch()  # a line printed another way restarts the interval (0 here: the next one prints)
    step(4, 4)
    assert lines[-1].startswith("[solve] 30/40 steps (75%)")
    assert format_seconds(59.96) == "60.0 s" and format_seconds(3600) == "60 min 00 s"
    with pytest.raises(ValueError, match="total"):
        Progress(0, "x", print)


def test_progress_default_interval_is_read_when_made(monkeypatch):
    import bridge.progress

    monkeypatch.setattr(bridge.progress, "EVERY_S", 0.0)
    lines = []
    Progress(3, "fit", lines.append).update(1)
    assert len(lines) == 1 and lines[0].startswith("[fit] 1/3 (33%)")


def _ou(t, x):
    return -x


def test_sde_and_ode_samplers_report_every_step_and_draw_the_same():
    from bridge.samplers import Heun, StochasticHeun, sample_ode, sample_sde

    x = torch.ones(50, 2, dtype=torch.float64)
    calls = []
    kw = dict(eps=0.5, steps=7, solver=StochasticHeun())
    plain = sample_sde(_ou, x, generator=torch.Generator().manual_seed(3), **kw).x
    told = sample_sde(
        _ou, x, generator=torch.Generator().manual_seed(3), progress=lambda k, n: calls.append((k, n)), **kw
    )
    assert calls == [(k, 7) for k in range(1, 8)]
    assert torch.equal(plain, told.x)
    calls.clear()
    ode = sample_ode(_ou, x, steps=5, solver=Heun(), progress=lambda k, n: calls.append((k, n)))
    assert calls == [(k, 5) for k in range(1, 6)]
    assert torch.equal(ode.x, sample_ode(_ou, x, steps=5, solver=Heun()).x)


@pytest.mark.parametrize("estimator", ["ode", "fk", "ito"])
def test_likelihood_estimators_report_every_step_and_draw_the_same(estimator):
    from bridge.likelihood import Hutchinson, backward_ito_log_density, feynman_kac_log_density, ode_log_density
    from bridge.reference import standard_normal

    x = torch.zeros(4, 2, dtype=torch.float64)
    log_rho0 = standard_normal(2).log_prob

    def run(**extra):
        g = torch.Generator().manual_seed(1)
        if estimator == "ode":
            return ode_log_density(_ou, x, log_rho0=log_rho0, divergence=Hutchinson(2), steps=6, generator=g, **extra)
        f = feynman_kac_log_density if estimator == "fk" else backward_ito_log_density
        return f(_ou, _ou, x, eps=0.5, log_rho0=log_rho0, paths=3, steps=6, generator=g, **extra)

    calls = []
    told = run(progress=lambda k, n: calls.append((k, n)))
    assert calls == [(k, 6) for k in range(1, 7)]
    assert torch.equal(told.log_density, run().log_density)
