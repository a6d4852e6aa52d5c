r"""The Schrödinger bridge by max–min over learned interpolants (docs/math.md §5, SI 3.39).

:func:`solve_bridge` composes the parts of :mod:`bridge.sb`: it checks the problem, resolves the
``"auto"`` settings (:mod:`~bridge.sb.auto`), builds the interpolant and the drift
(:mod:`~bridge.sb.interpolant`, :mod:`~bridge.sb.drifts`) and the coupling
(:mod:`~bridge.sb.couplings`), then runs the loop below on one :class:`~bridge.sb.state.TrainState`:
inner descent steps on the drift (:func:`~bridge.sb.objective.inner_loss`), one ascent step on the
interpolant (:func:`~bridge.sb.objective.sb_objective`), validation (:mod:`~bridge.sb.validation`)
and coupling refinement (:mod:`~bridge.sb.refine`), with checkpoints to resume from.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import progress as progress_lines
from ..checkpoint import save_checkpoint
from ..distributed import SINGLE, Group, current
from ..losses import sample_times
from ..progress import Progress, format_seconds
from ..threads import torch_threads
from ..train import ema_update
from . import family
from .auto import AutoChoices, learning_rates
from .config import SBConfig
from .couplings import MinibatchPairs, PairedRows, restore_coupling
from .kl_start import kl_start
from .objective import inner_loss, sb_objective
from .potential import TIME_BLOCK, MixturePotential
from .prune import prune
from .refine import RefineSchedule, sde_pairs
from .result import BridgeResult
from .setup import (
    CheckpointMismatchError,
    check_problem,
    couple,
    drift_nets,
    eps_scale_record,
    prepare_interpolant,
    problem_record,
    read_checkpoint,
    spare_drift,
)
from .state import TrainState
from .validation import VAL_NOISE_Z, VAL_SEED_OFFSET, Validation, split_holdout, validation_pairs

__all__ = ["CheckpointMismatchError", "solve_bridge"]

#: With ``gradient_drift="auto"`` resolved to True, the gradient networks' initial weights come from
#: their own generator, seeded ``seed + GRADIENT_SEED_OFFSET``: every run whose drift is not a gradient
#: then draws exactly what it drew before gradient drifts existed.
GRADIENT_SEED_OFFSET = 104729


def solve_bridge(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    interpolant: nn.Module | None = None,
    config: SBConfig | None = None,
    progress: Callable[[str], None] | None = None,
    checkpoint=None,
    checkpoint_every: float = 30.0,
    resume: bool = False,
) -> BridgeResult:
    r"""Solve the Schrödinger bridge between samples ``x0`` and ``x1`` by max–min (docs/math.md §5).

    Args:
        x0, x1: source and target samples ``(n, d)`` (the sizes may differ).
        eps: the paper's eps (diffusion ``sqrt(2 eps) dW``), ``> 0``.
        interpolant: a learnable interpolant (an ``nn.Module`` :class:`Interpolant`); default
            :func:`~bridge.sb.build_interpolant`.
        config: :class:`SBConfig`.
        progress: where progress lines go (default stderr).
        checkpoint: file for the training state, written atomically every ``checkpoint_every``
            seconds of training and at the end; ``None``: none.
        checkpoint_every: seconds between checkpoints.
        resume: continue from ``checkpoint`` when it exists. The same data, eps and config give
            the same continuation as an uninterrupted run; ``time_budget``, ``outer_steps``
            (to extend a finished run), ``threads``, ``log_every`` and ``patience`` may change.
            An interrupted run keeps its last checkpoint, a consistent state at most
            ``checkpoint_every`` seconds old.

    Under ``torchrun`` (an initialised :mod:`torch.distributed` process group,
    :func:`bridge.distributed.current`) each process draws its own ``batch_size`` rows per step
    and the gradients are averaged: the processes train as one process with ``world_size`` times
    the batch (docs/math.md §5.13). Rank 0 alone writes the checkpoint and
    the progress lines and decides when the time budget is spent; every rank returns the result.

    Returns:
        :class:`~bridge.sb.BridgeResult`, whose ``config`` holds the resolved ``"auto"`` settings
        and whose ``coupling["eps_scale"]`` says where eps sits against the data's scale
        (:mod:`bridge.sb.scale`; a warning line when the bridge is nearly the independent
        coupling or the OT map there).

    Raises:
        ValueError: bad samples or eps.
        CheckpointMismatchError: ``resume`` with a checkpoint of another problem.
        bridge.ot.ConvergenceError: a Sinkhorn plan of the coupling did not converge.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(256, 2, generator=g), torch.randn(256, 2, generator=g) + 2
        >>> cfg = SBConfig(outer_steps=5, warmup_steps=5, batch_size=64, hidden=16, log_every=0)
        >>> res = solve_bridge(x0, x1, 0.5, config=cfg, progress=lambda m: None)
        >>> res.steps, res.config.coupling, res.sample(x0[:3], per_point=2, steps=10).shape
        (5, 'minibatch', torch.Size([3, 2, 2]))
    """
    cfg = config if config is not None else SBConfig()
    if not isinstance(cfg, SBConfig):
        raise TypeError(f"config: expected an SBConfig, got {type(cfg).__name__}")
    say = progress if progress is not None else (lambda m: print(m, file=sys.stderr, flush=True))
    group = current()
    say = say if group.is_main else (lambda m: None)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    with torch_threads(cfg.threads):
        if cfg.drift_family == "auto":
            return _solve_auto_family(x0, x1, eps, interpolant, cfg, say, ckpt, checkpoint_every, resume, group)
        return _solve(x0, x1, eps, interpolant, cfg, say, ckpt, checkpoint_every, resume, group)


@dataclass
class _Run:
    """What stays fixed during a solve: the resolved settings, the problem, the clock, the
    checkpoint file and the processes training together (``group``; with several, ``shared_s``
    and ``save_due`` are rank 0's clock and checkpoint decision as of the last :meth:`sync`)."""

    cfg: SBConfig
    eps: float
    x0: Tensor
    held_out: tuple | None
    gen_val: torch.Generator
    say: Callable[[str], None]
    schedule: RefineSchedule
    interp_init: dict
    make_spare: Callable[[], nn.Module]
    problem: dict
    coupling_info: dict
    ckpt: Path | None
    checkpoint_every: float
    start: float = field(default_factory=time.perf_counter)
    last_save: float = field(default_factory=time.perf_counter)
    spare: nn.Module | None = None
    last_line: float = field(default_factory=time.perf_counter)
    group: Group = SINGLE
    shared_s: float | None = None
    save_due: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return self.x0.dtype

    @property
    def device(self) -> torch.device:
        return self.x0.device

    def elapsed(self, st: TrainState) -> float:
        return st.elapsed0 + time.perf_counter() - self.start

    def clock(self, st: TrainState) -> float:
        """The training seconds that decisions (time budget, learning rates) go by: this process's,
        or with several processes rank 0's at the last :meth:`sync`, so that every rank decides alike."""
        return self.elapsed(st) if self.shared_s is None else self.shared_s

    def sync(self, st: TrainState) -> None:
        """With several processes: rank 0's clock and whether a checkpoint is due, to every rank
        (one broadcast per pass of the loop, before its decisions); nothing in one process."""
        if not self.group.is_distributed:
            return
        due = time.perf_counter() - self.last_save >= self.checkpoint_every
        self.shared_s, flag = self.group.broadcast_values([self.elapsed(st), float(due)])
        self.save_due = flag > 0

    def out_of_time(self, st: TrainState) -> bool:
        return self.cfg.time_budget is not None and self.clock(st) >= self.cfg.time_budget

    def frac_done(self, st: TrainState, k: int) -> float:
        """The budget fraction used after ``k`` outer steps: steps or time, whichever is further
        (the time after the mixture family's KL start, :mod:`bridge.sb.kl_start`)."""
        frac = k / self.cfg.outer_steps
        if self.cfg.time_budget is None:
            return frac
        return max(frac, (self.clock(st) - st.kl_s) / max(self.cfg.time_budget - st.kl_s, 1e-9))

    def loss(self, net, s) -> Tensor:
        return inner_loss(net, s, self.eps, endpoint=self.cfg.drift_form == "endpoint")

    def spare_drift(self) -> nn.Module:
        """A drift that holds the best state's weights for a comparison (built once)."""
        if self.spare is None:
            self.spare = self.make_spare()
        return self.spare

    def tick(self, st: TrainState) -> None:
        """A progress line when ``progress.EVERY_S`` seconds have passed without one (and
        ``log_every`` is on): the step, the time so far and the time left."""
        now = time.perf_counter()
        if not self.cfg.log_every or now - self.last_line < progress_lines.EVERY_S:
            return
        self.last_line = now
        cfg, frac, elapsed = self.cfg, self.frac_done(st, st.step), self.elapsed(st)
        if cfg.time_budget is not None and st.kl_s:  # of the whole budget, the KL start's share included
            frac = (st.kl_s + frac * (cfg.time_budget - st.kl_s)) / cfg.time_budget
        warm = st.warm_done < cfg.warmup_steps
        what = f"warm-up {st.warm_done}/{cfg.warmup_steps}" if warm else f"step {st.step}/{cfg.outer_steps}"
        what = what if st.kl_finished else f"LightSB's KL start, step {st.kl_done}"
        left = f"~{format_seconds(elapsed * (1 - frac) / frac)} left" if frac > 0 else "time left unknown"
        if cfg.time_budget is not None:
            left += f" (budget {format_seconds(cfg.time_budget)})"
        self.say(f"[solve] training: {what}, {format_seconds(elapsed)}, {left}")

    def maybe_save(self, st: TrainState, force: bool = False) -> None:
        """A checkpoint when one is due (rank 0 writes it, with every rank's generator state)."""
        g = self.group
        due = self.save_due if g.is_distributed else time.perf_counter() - self.last_save >= self.checkpoint_every
        if self.ckpt is None or not (force or due):
            return
        tensors, meta = st.to_checkpoint(self.problem, self.coupling_info, self.elapsed(st))
        if g.is_distributed:  # each rank's own stream, for a resumed run to draw on as before
            tensors["rng"]["ranks"] = g.all_gather(st.gen.get_state()[None])
            meta["world_size"] = g.world_size
        if g.is_main:
            save_checkpoint(self.ckpt, tensors, meta)
        self.last_save, self.save_due = time.perf_counter(), False


def _solve(x0, x1, eps, interpolant, cfg: SBConfig, say, ckpt: Path | None, every: float, resume: bool, group):
    st, run, choices = _start(x0, x1, eps, interpolant, cfg, say, ckpt, every, resume, group)
    _train(st, run)
    return _result(st, run, choices)


def _solve_auto_family(x0, x1, eps, interpolant, cfg: SBConfig, say, ckpt, every: float, resume: bool, group):
    """``drift_family="auto"`` (:mod:`bridge.sb.family`): the mixture family's trial on the training
    part, the test on the held-out part, then the rest of the mixture run or a network solve."""
    eps = check_problem(x0, x1, eps)
    net_cfg = replace(cfg, drift_family="network")
    say = _warn_once(say)  # the trial's warnings (eps against the data's scale) are not repeated
    why = family.network_only(cfg, interpolant is not None, x0.shape[0], x1.shape[0])
    if why is not None:
        say(f"[solve] drift family 'auto': network ({why})")
        return _with_family(
            _solve(x0, x1, eps, interpolant, net_cfg, say, ckpt, every, resume, group),
            {"family": "network", "reason": f"network: {why}"},
        )
    split = family.split_for_test(x0, x1, cfg.seed)
    try:  # a network solve after a rejected trial (its record is in the checkpoint)?
        restored = read_checkpoint(ckpt, problem_record(split.x0, split.x1, eps, net_cfg)) if resume else None
    except CheckpointMismatchError:
        restored = None
    if restored is not None:
        old = {"family": "network", "reason": "network: resumed from a network-family checkpoint", "trial_s": 0.0}
        record = restored[1]["coupling_info"].get("family", old)
        trial_file = family.trial_path(ckpt)
        trial = BridgeResult.load(trial_file) if trial_file.is_file() else None
        return _network_after_trial(split, eps, net_cfg, record, trial, say, ckpt, every, restored, group)
    mix_cfg = replace(cfg, drift_family="mixture")
    st, run, choices = _start(split.x0, split.x1, eps, None, mix_cfg, say, ckpt, every, resume, group)
    record = run.coupling_info.get("family")  # a resumed run past its trial
    if record is None:
        say(
            f"[solve] drift family 'auto': the mixture family's trial ({family.TRIAL_SHARE:.0%} of its run), "
            f"then a test on {split.test0.shape[0]} held-out points per side"
        )
        _train(st, run, stop_frac=family.TRIAL_SHARE)
        record = family.mixture_test(st.drift_out, split, cfg.seed)
        record |= {"trial_steps": st.step, "trial_s": round(run.elapsed(st), 3)}
        say(f"[solve] drift family 'auto': {record['reason']}")
    if record["family"] == "network":
        trial = _result(st, run, choices)  # the mixture as the trial left it, for the comparison at the end
        trial.stopped_by = "family_trial"
        if ckpt is not None and group.is_main:
            trial.save(family.trial_path(ckpt))
            ckpt.unlink(missing_ok=True)  # the trial's state; the network solve writes its own
        return _network_after_trial(split, eps, net_cfg, record, trial, say, ckpt, every, None, group)
    st.coupling, joined = family.join_held_out(st.coupling, split)
    if "joined" not in record:
        record |= {"joined": joined}
        if joined:
            say(f"[solve] drift family 'auto': the {joined} held-out points per side join the mixture's training set")
    run.coupling_info = run.coupling_info | {"family": record}
    _train(st, run)
    return _result(st, run, choices)


def _warn_once(say):
    """``say`` that passes each warning line once."""
    said: set = set()

    def once(msg):
        if not (msg.startswith("[solve] warning:") and msg in said):
            said.add(msg)
            say(msg)

    return once


def _network_after_trial(split, eps, cfg: SBConfig, record: dict, trial, say, ckpt, every, restored, group):
    """The network family on the training part of ``split``, with the time budget that the mixture's
    trial left (resumed from ``restored``, its checkpoint as read, when not None); then the family
    closer to the held-out targets, the networks or ``trial`` (the trial's mixture result;
    :func:`bridge.sb.family.compare_with_trial`)."""
    if cfg.time_budget is not None:
        cfg = replace(
            cfg, time_budget=max(cfg.time_budget - record["trial_s"], family.MIN_BUDGET_SHARE * cfg.time_budget)
        )
    resumed = restored is not None
    st, run, choices = _start(split.x0, split.x1, eps, None, cfg, say, ckpt, every, resumed, group, restored)
    run.coupling_info = run.coupling_info | {"family": record}
    _train(st, run)
    res = _result(st, run, choices)
    res.wall_s += record["trial_s"]
    if trial is None:  # a checkpoint written without the trial beside it
        say("[solve] drift family 'auto': no trial mixture beside the checkpoint to compare with; the networks stay")
        return res
    started = time.perf_counter()
    final = family.compare_with_trial(res, record, split, cfg.seed)
    say(f"[solve] drift family 'auto': {final['reason']}")
    out = res if final["family"] == "network" else trial
    out.wall_s = res.wall_s + time.perf_counter() - started
    return _with_family(out, final)


def _with_family(res: BridgeResult, record: dict) -> BridgeResult:
    """``res`` with the family decision recorded (``family`` and ``choices["drift_family"]``; a
    mixture's record of switched-off components stays)."""
    res.family = res.family | dict(record)
    res.choices = res.choices | {"drift_family": record["reason"]}
    return res


def _start(
    x0, x1, eps, interpolant, cfg: SBConfig, say, ckpt: Path | None, every: float, resume: bool, group, restored=None
):
    """The state, the run and the ``"auto"`` choices of a solve (resumed from ``ckpt`` when asked;
    ``restored``: that checkpoint, already read)."""
    eps = check_problem(x0, x1, eps)
    d, dtype, device = x0.shape[1], x0.dtype, x0.device
    problem = problem_record(x0, x1, eps, cfg)
    gen_val = torch.Generator().manual_seed(cfg.seed + VAL_SEED_OFFSET)
    x0, x1, held_out = split_holdout(x0, x1, cfg, gen_val)
    gen = torch.Generator().manual_seed(cfg.seed)
    interpolant = prepare_interpolant(interpolant, cfg, d, eps, gen, dtype, device)
    interp_init = {k: v.detach().clone() for k, v in interpolant.state_dict().items()}
    drift_cfg = replace(cfg, gradient_drift=cfg.gradient_drift is True, lr_inner=learning_rates(cfg, d)[0])
    nets = drift_nets(drift_cfg, d, interpolant, eps, dtype, device, gen, x1)
    scale = eps_scale_record(x0, x1, eps, say)
    start = time.perf_counter()  # the coupling's plans count against the time budget
    if restored is None and resume:
        restored = read_checkpoint(ckpt, problem)
    choices, coupling, info = couple(cfg, x0, x1, eps, gen, say, restored)
    coupling = _shared_coupling(group, coupling, restored, (x0, x1, eps, cfg, gen))
    info = info | {"eps_scale": scale}
    if group.is_distributed and info["coupling"] == "minibatch":  # one plan between all ranks' points
        info = info | {"minibatch_size": group.world_size * cfg.batch_size, "minibatch_ranks": group.world_size}
    run_cfg = choices.apply(cfg)
    if cfg.gradient_drift == "auto" and choices.gradient_drift:
        g = torch.Generator().manual_seed(cfg.seed + GRADIENT_SEED_OFFSET)
        nets = drift_nets(run_cfg, d, interpolant, eps, dtype, device, g)
    run = _Run(
        cfg=run_cfg,
        eps=eps,
        x0=x0,
        held_out=held_out,
        gen_val=gen_val,
        say=say,
        schedule=RefineSchedule(choices.refine_rounds, cfg.refine_share),
        interp_init=interp_init,
        make_spare=lambda: spare_drift(run_cfg, d, interpolant, eps, dtype, device),
        problem=problem,
        coupling_info=info,
        ckpt=ckpt,
        checkpoint_every=every,
        start=start,
        group=group,
    )
    outer = [p for p in interpolant.parameters() if p.requires_grad]
    opt_out = torch.optim.Adam(outer, lr=run_cfg.lr_outer) if outer else None
    drift, drift_avg, opt_in = nets
    st = TrainState(drift, drift_avg, interpolant, opt_in, opt_out, coupling, gen)
    st.validation = _validation(run, choices.coupling, restored)
    if restored is not None:
        st.load_checkpoint(*restored)
        say(f"[solve] resumed from {ckpt} at outer step {st.step} ({st.elapsed0:.1f}s of training so far)")
    _own_stream(st, run, restored)
    return st, run, choices


def _train(st: TrainState, run: _Run, stop_frac: float | None = None) -> None:
    """The loop: the mixture family's KL start, warm-up, then outer steps (each after
    ``inner_steps`` inner ones) until the steps, the time budget or the patience run out;
    refinement rounds start at their share of the budget. With ``stop_frac`` it pauses once that
    share of the budget is used (a later call continues exactly as an uninterrupted run)."""
    cfg = run.cfg
    if not st.kl_finished:
        kl_start(st, run)
    while st.warm_done < cfg.warmup_steps:
        run.sync(st)
        if run.out_of_time(st):
            st.stopped_by = "time_budget"
            break
        _inner_step(st, run)
        st.warm_done += 1
        run.maybe_save(st)
        run.tick(st)
    while st.stopped_by == "steps" and st.step < cfg.outer_steps:
        run.sync(st)
        if stop_frac is not None and run.frac_done(st, st.step) >= stop_frac:
            run.maybe_save(st, force=True)
            return
        if run.out_of_time(st):
            st.stopped_by = "time_budget"
            break
        if st.phase < run.schedule.rounds and run.schedule.due(st.phase, run.frac_done(st, st.step)):
            _start_round(st, run)
        if st.warm_done < cfg.warmup_steps:  # a refinement round's warm-up
            _inner_step(st, run)
            st.warm_done += 1
            run.maybe_save(st)
            run.tick(st)
            continue
        st.step += 1
        decay = run.schedule.decay(run.frac_done(st, st.step), st.phase, st.phase_start)
        value, gap = _outer_step(st, run, decay)
        if cfg.log_every and (st.step % cfg.log_every == 0 or st.step == 1):
            _log_step(st, run, value, gap)
        if st.validation is not None and st.step % cfg.val_every == 0:
            _validate(st, run)
            _check_patience(st, run)
        run.maybe_save(st)
        run.tick(st)
    run.maybe_save(st, force=True)  # before the last comparison: an extended run continues as an uninterrupted one
    v = st.validation
    if v is not None and (not v.curve or v.curve[-1]["step"] != st.step):
        _validate(st, run)  # the last state is a candidate too


def _batch(st: TrainState, run: _Run):
    """A batch of pairs from the coupling, times ``t`` and noise ``z``. The mixture family draws
    one time per run of :data:`~bridge.sb.potential.TIME_BLOCK` rows (the same expectation; its
    drift evaluates such runs by matrix products), when the batch divides into them."""
    n = run.cfg.batch_size
    xa, xb = st.coupling(n)
    t_range = (run.cfg.t_min, 1.0 - run.cfg.t_min)
    block = TIME_BLOCK if run.cfg.drift_family == "mixture" and n % TIME_BLOCK == 0 else 1
    t = sample_times(n // block, t_range, generator=st.gen, dtype=run.dtype).repeat_interleave(block).to(run.device)
    z = torch.randn(xa.shape, generator=st.gen, dtype=run.dtype).to(run.device)
    return xa, xb, t, z


def _inner_step(st: TrainState, run: _Run) -> float:
    """One descent step on the drift, the interpolant held fixed; returns the batch loss."""
    xa, xb, t, z = _batch(st, run)
    with torch.no_grad():
        s = st.interpolant.sample(t, xa, xb, z)
    loss = run.loss(st.drift, s).mean()
    st.opt_inner.zero_grad(set_to_none=True)
    loss.backward()
    run.group.average_gradients(p for grp in st.opt_inner.param_groups for p in grp["params"])
    st.opt_inner.step()
    st.n_inner += 1
    if st.drift_avg is not None:
        ema_update(st.drift_avg, st.drift, run.cfg.ema, st.n_inner)
    return float(loss.detach())


def _outer_step(st: TrainState, run: _Run, decay: float) -> tuple[float, float]:
    """``inner_steps`` descent steps on the drift, then one ascent step on the interpolant, both at
    their learning rates times ``decay``. Returns the objective and the inner loss's decrease."""
    cfg = run.cfg
    for grp in st.opt_inner.param_groups:
        grp["lr"] = cfg.lr_inner * decay
    first = last = 0.0
    for k in range(cfg.inner_steps):
        val = _inner_step(st, run)
        first, last = (val, val) if k == 0 else (first, val)
    if st.opt_outer is None or cfg.lr_outer <= 0:
        return last, first - last
    for grp in st.opt_outer.param_groups:
        grp["lr"] = cfg.lr_outer * decay
    xa, xb, t, z = _batch(st, run)
    obj = sb_objective(st.drift, st.interpolant, xa, xb, run.eps, t=t, z=z).mean()
    st.opt_outer.zero_grad(set_to_none=True)
    (-obj).backward()  # ascent on the interpolant
    run.group.average_gradients(p for grp in st.opt_outer.param_groups for p in grp["params"])
    st.opt_outer.step()
    return float(obj.detach()), first - last


def _log_step(st: TrainState, run: _Run, value: float, gap: float) -> None:
    """A history record and a progress line, with a one-batch kinetic-energy estimate."""
    with torch.no_grad():
        xa, xb, t, z = _batch(st, run)
        s = st.interpolant.sample(t, xa, xb, z)
        kinetic = float(st.drift(s.t, s.xt).pow(2).sum(-1).mean())
    rec = {
        "step": st.step,
        "phase": st.phase,
        "objective": value,
        "kinetic": kinetic,
        "inner_gap": gap,
        "wall_s": round(run.elapsed(st), 3),
    }
    st.history.append(rec)
    run.last_line = time.perf_counter()
    run.say(
        f"[solve] outer {st.step:>6d}/{run.cfg.outer_steps}  objective {value:+.4f}  "
        f"kinetic {kinetic:.4f}  inner gap {gap:+.2e}  {rec['wall_s']:.1f}s"
    )


def _validate(st: TrainState, run: _Run) -> None:
    v = st.validation
    rec = v.evaluate(st.drift_out, st.interpolant, run.loss, run.spare_drift, st.step, run.elapsed(st))
    if run.cfg.log_every:
        held, se = rec["best_val_loss"], rec["diff_se"]
        against = "" if held is None else f", the best state's {held:+.5f} (difference s.e. {se:.1e})"
        run.say(
            f"[solve] validation loss {rec['val_loss']:+.5f}{against} at outer step {st.step} "
            f"(best: step {v.best_step})"
        )


def _check_patience(st: TrainState, run: _Run) -> None:
    patience = run.cfg.patience
    if patience is not None and st.validation.since_best >= patience:
        st.stopped_by = "early_stop"
        run.say(
            f"[solve] early stop: no better validation loss in {patience} evaluations "
            f"(best at outer step {st.validation.best_step})"
        )


def _start_round(st: TrainState, run: _Run) -> None:
    """Coupling refinement: pairs from the learned SDE, then the starting interpolant, fresh outer
    optimiser state and a new warm-up on them."""
    cfg = run.cfg
    t0, wall0 = time.perf_counter(), run.elapsed(st)
    st.phase_start = run.frac_done(st, st.step)
    n, g = cfg.refine_pairs, run.group  # with several processes, each draws its share of the pairs
    ticker = Progress(g.share(n), "solve", run.say, unit="refinement pairs from the learned SDE")
    report = (lambda done, total: ticker.update(done)) if cfg.log_every else None
    xa, xb = sde_pairs(st.drift_out, run.x0, g.share(n), run.eps, cfg.refine_sde_steps, st.gen, report)
    xa, xb = g.all_gather(xa)[:n], g.all_gather(xb)[:n]
    gen_s = time.perf_counter() - t0
    st.phase += 1
    st.coupling = PairedRows({"x0": xa, "x1": xb}, st.gen)
    st.interpolant.load_state_dict(run.interp_init)
    if st.opt_outer is not None:
        st.opt_outer.state.clear()
    if st.validation is not None:  # validate on held-out x0 and their partners from the same SDE
        va, vb = sde_pairs(st.drift_out, run.held_out[0], cfg.val_size, run.eps, cfg.refine_sde_steps, run.gen_val)
        st.validation.reset(validation_pairs((va, vb), run.eps, "paired", cfg, run.gen_val, run.dtype, run.device))
    st.refine_started.append({"round": st.phase, "step": st.step, "wall_s": round(wall0, 3), "pairs_s": gen_s})
    run.say(
        f"[solve] coupling refinement, round {st.phase}/{run.schedule.rounds}: {cfg.refine_pairs} pairs from the "
        f"learned SDE ({cfg.refine_sde_steps} steps, {gen_s:.1f}s); interpolant reset, training on them"
    )
    st.warm_done = 0
    for grp in st.opt_inner.param_groups:
        grp["lr"] = cfg.lr_inner


def _shared_coupling(group: Group, coupling, restored, problem):
    """With several processes: rank 0's fixed Sinkhorn plans on every rank (a time budget may stop
    the ranks' plan building at different counts), and minibatch plans solved between the points
    that all ranks drew. ``problem`` is ``(x0, x1, eps, cfg, gen)``."""
    if not group.is_distributed:
        return coupling
    if coupling.kind == "sinkhorn" and restored is None:
        state = group.broadcast_object(coupling.state() if group.is_main else None)
        coupling = coupling if group.is_main else restore_coupling("sinkhorn", state, *problem)
    if isinstance(coupling, MinibatchPairs):
        coupling.group = group
    return coupling


def _own_stream(st: TrainState, run: _Run, restored) -> None:
    """Rank ``r > 0`` draws from its own stream (rank 0 from the seed's): seeded
    :meth:`~bridge.distributed.Group.rank_seed` on a fresh start, its stored state when resuming
    (a fresh seed if the checkpoint holds none for it: another world size)."""
    g = run.group
    if g.rank == 0:
        return
    ranks = restored[0]["rng"].get("ranks") if restored is not None else None
    if ranks is not None and ranks.shape[0] > g.rank:
        st.gen.set_state(ranks[g.rank].clone())
    else:
        st.gen.manual_seed(g.rank_seed(run.cfg.seed) + st.n_inner)


def _validation(run: _Run, coupling: str, restored) -> Validation | None:
    """The validation state: its pairs from the checkpoint, or drawn from the held-out points."""
    if run.held_out is None:
        return None
    if restored is not None and "validation" in restored[0]:
        return Validation(pairs=restored[0]["validation"])
    pairs = validation_pairs(run.held_out, run.eps, coupling, run.cfg, run.gen_val, run.dtype, run.device)
    run.say(
        f"[solve] validation: {run.held_out[0].shape[0]} + {run.held_out[1].shape[0]} held-out points, "
        f"{run.cfg.val_size} pairs ({coupling} coupling), every {run.cfg.val_every} outer steps"
    )
    return Validation(pairs=pairs)


def _result(st: TrainState, run: _Run, choices: AutoChoices) -> BridgeResult:
    if st.step == 0 and st.stopped_by == "time_budget":
        msg = (
            f"solve_bridge: the time budget ({run.cfg.time_budget:g}s) ran out after {st.warm_done} warm-up and no "
            "outer steps; the result is barely trained"
        )
        run.say(f"[solve] warning: {msg[len('solve_bridge: ') :]}")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    validation = _returned_state(st, run) if st.validation is not None else {}
    coupling = dict(run.coupling_info)
    record = coupling.pop("family", None)
    reasons = dict(choices.reasons) | ({"drift_family": record["reason"]} if record else {})
    if choices.refine_rounds:
        refine = {"rounds": choices.refine_rounds, "share": run.cfg.refine_share, "pairs": run.cfg.refine_pairs}
        coupling = coupling | {"refine": refine | {"started": st.refine_started}}
    if st.kl_done:
        coupling = coupling | {"kl_start": {"steps": st.kl_done, "s": round(st.kl_s, 3)}}
    drift, pruned = _returned_drift(st, run)
    record = (record or {}) | ({"pruned": pruned} if pruned else {})
    return BridgeResult(
        drift_net=drift,
        interpolant=st.interpolant,
        eps=run.eps,
        history=st.history,
        steps=st.step,
        wall_s=run.elapsed(st),
        stopped_by=st.stopped_by,
        config=run.cfg,
        coupling=coupling,
        validation=validation,
        choices=reasons,
        family=record,
    )


def _returned_drift(st: TrainState, run: _Run) -> tuple[nn.Module, dict | None]:
    """The drift the result returns, in eval mode; the mixture family's a copy with the components
    that the training sources do not support switched off (:mod:`bridge.sb.prune`), and that record."""
    drift = st.drift_out
    if not isinstance(drift, MixturePotential) or run.cfg.min_component_count <= 0:
        return drift.eval(), None
    drift = copy.deepcopy(drift).eval()
    rec = prune(drift, run.x0, run.cfg.min_component_count)
    if rec["switched_off"]:
        run.say(
            f"[solve] mixture family: {rec['switched_off']} of {drift.n_components} components switched off: each "
            f"accounts for fewer than {rec['min_count']:g} of the {run.x0.shape[0]} training sources' predicted targets"
        )
    return drift, rec


def _returned_state(st: TrainState, run: _Run) -> dict:
    """Load the state that the validation picks into the result's networks; its record."""
    v, step = st.validation, st.step
    returned = v.returned_step(step)
    if returned != step:
        st.drift_out.load_state_dict(v.best[0])
        st.interpolant.load_state_dict(v.best[1])
        last = v.curve[-1]
        run.say(
            f"[solve] returning the state of outer step {returned}: on the held-out samples the last state is "
            f"worse by {last['val_loss'] - last['best_val_loss']:.2e} (> {VAL_NOISE_Z:g} standard errors)"
        )
    elif v.best_step != step:
        run.say(
            f"[solve] keeping the last state: on the held-out samples it is within {VAL_NOISE_Z:g} standard errors "
            f"of the best one (step {v.best_step})"
        )
    return {
        "holdout": run.cfg.holdout,
        "held_out": [run.held_out[0].shape[0], run.held_out[1].shape[0]],
        "pairs": int(v.pairs["x0"].shape[0]),
        "coupling": run.coupling_info["coupling"],
        "every": run.cfg.val_every,
        "best_step": v.best_step,
        "best_loss": v.best_loss,
        "returned_step": returned,
        "noise_z": VAL_NOISE_Z,
        "curve": v.curve,
    }
