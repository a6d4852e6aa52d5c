r"""The mixture family's start on LightSB's KL objective (docs/math.md §5.16).

For the first ``kl_share`` of its training the solver fits the mixture potential by LightSB's
objective :math:`\mathbb E\log c_\theta(x_0) - \mathbb E\log v_\theta(x_1)` on the coupling's
draws (only their marginals matter), then bridge matching continues from that fit. Both
objectives have the bridge as their population minimiser; the KL objective's stochastic gradients
are far less noisy than matching's, so the start gets into the minimiser's basin fast, and
matching then moves to its own empirical minimiser (benchmarks/README.md §24).
"""

from __future__ import annotations

import torch

from .lightsb import LIGHTSB_BATCH, LIGHTSB_LR, cosine_factor, lightsb_loss
from .state import TrainState

__all__ = ["kl_start"]


def _kl_goal(cfg) -> tuple[int, float | None]:
    """``(steps, seconds)``: the start's share of the inner steps and, with a time budget, of its
    seconds; it ends at whichever comes first."""
    steps = round(cfg.kl_share * cfg.outer_steps * cfg.inner_steps)
    return steps, (cfg.kl_share * cfg.time_budget if cfg.time_budget is not None else None)


def kl_start(st: TrainState, run) -> None:
    """Adam on LightSB's objective from :func:`~bridge.sb.fit_lightsb`'s default rate along a
    cosine to zero (its own optimiser, on its default batch of the coupling's draws per step),
    then the moving average restarts at the fit. ``run`` is the solver's run (clock, processes,
    progress). No checkpoint is written midway:
    an interrupted start runs again from the beginning."""
    cfg = run.cfg
    if cfg.drift_family != "mixture" or not cfg.kl_share:
        st.kl_finished = True
        return
    steps, seconds = _kl_goal(cfg)
    params = list(st.drift.parameters())
    opt = torch.optim.Adam(params, lr=LIGHTSB_LR)
    loss = None
    while st.kl_done < steps:
        run.sync(st)
        done = max(st.kl_done / steps, run.clock(st) / seconds if seconds else 0.0)
        if done >= 1.0:
            break
        for grp in opt.param_groups:
            grp["lr"] = LIGHTSB_LR * cosine_factor(done)
        xa, xb = st.coupling(LIGHTSB_BATCH)
        loss = lightsb_loss(st.drift, xa, xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        run.group.average_gradients(params)
        opt.step()
        st.kl_done += 1
        run.tick(st)
    if st.drift_avg is not None:
        st.drift_avg.load_state_dict(st.drift.state_dict())
    run.sync(st)
    st.kl_s, st.kl_finished = run.clock(st), True
    if st.kl_done:
        value = f", objective {float(loss.detach()):.4g}" if loss is not None else ""
        run.say(
            f"[solve] LightSB's KL start: {st.kl_done} steps in {st.kl_s:.1f}s{value}; "
            "bridge matching continues from its fit"
        )
