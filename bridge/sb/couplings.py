r"""Couplings: how the solver draws training pairs ``(x0, x1)`` (docs/math.md §5, "Couplings").

Every coupling is a callable ``draw(n) -> (x0, x1)`` with its random state in a
``torch.Generator``, plus :meth:`~Coupling.state` / :meth:`~Coupling.load_state`: the tensors a
checkpoint must hold so that a resumed run draws the same pairs.

* :class:`IndependentPairs`: ``x0`` and ``x1`` drawn independently (the paper's max–min);
* :class:`PairedRows`: row ``i`` of ``x0`` and of ``x1`` is a pair (known plans, aligned data,
  the refinement rounds' pairs);
* :class:`MinibatchPairs`: a fresh entropic plan between ``n`` random points of each side for
  every draw, and for each drawn ``x0`` a partner from its row (SF2M's coupling, Tong et al. 2024);
* :class:`PlanPairs`: pairs from fixed entropic plans between subsets of the data, each held as
  its table of conditional rows; :class:`PartnerPairs`: the same plans held as their potentials,
  for plans too large for a table (:func:`bridge.ot_backend.plan_backend` decides), with
  :data:`PARTNERS` partners per row drawn once.

:func:`make_coupling` builds one by name; ``"auto"`` is resolved before, by
:func:`bridge.sb.auto.resolve_auto`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..progress import Progress

__all__ = [
    "MINIBATCH_ADVICE",
    "PLANS_ADVICE",
    "IndependentPairs",
    "MinibatchPairs",
    "PairedRows",
    "PlanPairs",
    "PartnerPairs",
    "check_samples",
    "draw_partners",
    "first_plan",
    "gathered_plan",
    "make_coupling",
    "restore_coupling",
]

#: Sinkhorn sweeps at most for a plan of the coupling (after the annealing).
PLAN_SWEEPS = 300
#: With a time budget, stop adding fixed plans once they would take more than this share of it.
PLAN_BUDGET_SHARE = 0.25
#: Rows of a potentials-only plan whose effective sample sizes give its median (a full pass over
#: the plan costs as much as a Sinkhorn sweep; the rows are a random subset of the data).
ESS_ROWS = 2048
#: Partners drawn once per row of a plan held as potentials. A fresh draw would cost a pass over
#: all ``k1`` targets for every batch, of which a training run draws ~10^4; the pool costs one pass
#: over the plan, and with ``k0`` rows it holds ``64 k0`` pairs, more than a default run draws
#: (``outer_steps x inner_steps x batch_size`` = 2.56M, against 6.4M at ``k0 = 10^5``).
PARTNERS = 64
#: Plans held as potentials are solved in float32 (about twice as fast) when ``plan_tol`` is at
#: least this: float32 rounding leaves marginal errors of ~1e-5 (bridge.ot_online.chunked_sinkhorn).
FLOAT32_TOL = 1e-4
#: What the minibatch coupling's :class:`~bridge.ot.ConvergenceError` advises, in this library's
#: terms (the message ends with it; the ``bridge`` command words it in its own flags).
MINIBATCH_ADVICE = "use coupling='independent' or coupling='sinkhorn'"
#: What the fixed plans' (and ``coupling="auto"``'s first plan's) ConvergenceError advises.
PLANS_ADVICE = "use a smaller plan_size or coupling='independent'"


def check_samples(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a finite ``(n, d)`` tensor with ``n >= 2``."""
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected samples of shape (n, d) with n >= 2, got {shape}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or Inf")


def _rows(x: Tensor, n: int, gen: torch.Generator) -> Tensor:
    return x[torch.randint(0, x.shape[0], (n,), generator=gen).to(x.device)]


class Coupling:
    """The interface: ``draw(n)`` pairs; the checkpointed tensors (none by default)."""

    kind: str = ""

    def __call__(self, n: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def state(self) -> dict[str, Tensor]:
        """Tensors that a checkpoint must hold to continue drawing the same pairs."""
        return {}

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore what :meth:`state` returned."""


class IndependentPairs(Coupling):
    """``x0`` and ``x1`` rows drawn independently, with replacement."""

    kind = "independent"

    def __init__(self, x0: Tensor, x1: Tensor, gen: torch.Generator):
        self.x0, self.x1, self.gen = x0, x1, gen

    def __call__(self, n: int) -> tuple[Tensor, Tensor]:
        a = _rows(self.x0, n, self.gen)
        return a, _rows(self.x1, n, self.gen)


class PairedRows(Coupling):
    """Random rows of paired samples ``pool = {"x0", "x1"}``."""

    kind = "paired"

    def __init__(self, pool: dict[str, Tensor], gen: torch.Generator):
        if pool["x0"].shape[0] != pool["x1"].shape[0]:
            raise ValueError(
                f"coupling='paired' takes row i of x0 and x1 as a pair: expected as many rows, got "
                f"{pool['x0'].shape[0]} and {pool['x1'].shape[0]}"
            )
        self.pool, self.gen = pool, gen

    def __call__(self, n: int) -> tuple[Tensor, Tensor]:
        x0 = self.pool["x0"]
        i = torch.randint(0, x0.shape[0], (n,), generator=self.gen).to(x0.device)
        return x0[i], self.pool["x1"][i]


def row_cdf(rows: Tensor) -> Tensor:
    """Row-wise CDFs of the non-negative rows of a plan, each ending at exactly 1."""
    cdf = rows.cumsum(dim=1)
    return cdf / cdf[:, -1:]


def draw_from_rows(cdf: Tensor, gen: torch.Generator) -> Tensor:
    """One column index per row, drawn from the row's distribution given as its CDF (inversion)."""
    v = torch.rand(cdf.shape[0], 1, generator=gen, dtype=cdf.dtype).to(cdf.device)
    return torch.searchsorted(cdf, v).squeeze(1).clamp_(max=cdf.shape[1] - 1)


def gathered_plan(a: Tensor, b: Tensor, eps: float, tol: float, warm, group=None):
    """``(A, B, plan, mine)``: the entropic minibatch plan between the batches of all ranks.

    ``A``, ``B`` are every rank's ``a``, ``b`` concatenated in rank order
    (:meth:`bridge.distributed.Group.all_gather`; ``a``, ``b`` themselves in one process), ``plan``
    is :func:`bridge.ot.minibatch_log_plan` on them, the same on every rank, and ``mine`` the slice
    of its rows that are this rank's ``a``. So ``N`` ranks drawing ``n`` points each sample from
    the plan that one process drawing ``N n`` points would solve (docs/math.md §5.13)."""
    from ..ot import minibatch_log_plan

    if group is None or not group.is_distributed:
        mine = slice(0, a.shape[0])
    else:
        mine = slice(group.rank * a.shape[0], (group.rank + 1) * a.shape[0])
        if a.dtype == b.dtype:  # one collective for both sides
            ab = group.all_gather(torch.cat([a, b], dim=1))
            a, b = ab[:, : a.shape[1]], ab[:, a.shape[1] :]
        else:
            a, b = group.all_gather(a), group.all_gather(b)
    return a, b, minibatch_log_plan(a, b, eps, tol=tol, max_iter=300, warm=warm), mine


class MinibatchPairs(Coupling):
    """A fresh entropic plan at the bridge's eps between ``n`` random points of each side for every
    draw (:func:`bridge.ot.minibatch_log_plan`), and for row ``i`` a partner ``j ~ P(j | i)``, so
    each drawn ``x0`` appears once. Each plan's Sinkhorn starts warm from the previous plan's
    source potential; that potential is the checkpointed state. With a distributed ``group``
    (:mod:`bridge.distributed`) the plan is solved between the points that all ranks drew
    (:func:`gathered_plan`), and each rank draws the partners of its own rows."""

    kind = "minibatch"

    def __init__(self, x0: Tensor, x1: Tensor, eps: float, tol: float, gen: torch.Generator, group=None):
        self.x0, self.x1, self.eps, self.tol, self.gen, self.group = x0, x1, eps, tol, gen, group
        self.tensors: dict[str, Tensor] = {}  # {"x_prev", "f_prev"} once a plan was solved

    def __call__(self, n: int) -> tuple[Tensor, Tensor]:
        from ..ot import ConvergenceError

        a, b = _rows(self.x0, n, self.gen), _rows(self.x1, n, self.gen)
        warm = (self.tensors["x_prev"], self.tensors["f_prev"]) if self.tensors else None
        a_all, b_all, plan, mine = gathered_plan(a, b, self.eps, self.tol, warm, self.group)
        if not plan.marginal_error <= 10 * self.tol:
            k = a_all.shape[0]
            raise ConvergenceError(
                f"minibatch coupling: marginal error {plan.marginal_error:.3g} of a {k} x {k} plan at "
                f"eps = {self.eps:g}; {MINIBATCH_ADVICE}"
            )
        self.tensors = {"x_prev": a_all, "f_prev": plan.potential}
        return a, b_all[draw_from_rows(row_cdf(plan.log_plan[mine].softmax(dim=1)), self.gen)]

    def state(self) -> dict[str, Tensor]:
        return self.tensors

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        self.tensors = dict(tensors)


class PlanPairs(Coupling):
    """Pairs from ``count`` fixed discrete plans: ``a, b`` of shape ``(count, k, d)`` and each
    plan's row-normalised CDF ``(count, k0, k1)``."""

    kind = "sinkhorn"

    def __init__(self, a: Tensor, b: Tensor, cdf: Tensor, gen: torch.Generator):
        self.a, self.b, self.cdf, self.gen = a, b, cdf, gen

    def __call__(self, n: int) -> tuple[Tensor, Tensor]:
        count, k0, _ = self.cdf.shape
        p = torch.randint(0, count, (n,), generator=self.gen).to(self.a.device)
        i = torch.randint(0, k0, (n,), generator=self.gen).to(self.a.device)
        return self.a[p, i], self.b[p, draw_from_rows(self.cdf[p, i], self.gen)]

    def state(self) -> dict[str, Tensor]:
        return {"a": self.a, "b": self.b, "cdf": self.cdf}


class PartnerPairs(Coupling):
    """Pairs from ``count`` fixed plans held as potentials: the rows ``a`` ``(count, k0, d)``, the
    targets ``b`` ``(count, k1, d)`` and, for every row, :data:`PARTNERS` target indices drawn once
    from its conditional law (``partners``, ``(count, k0, K)``, :func:`draw_partners`). A draw picks
    a plan, a row and one of the row's partners uniformly, so it costs no pass over the targets."""

    kind = "sinkhorn"

    def __init__(self, a: Tensor, b: Tensor, partners: Tensor, gen: torch.Generator):
        self.a, self.b, self.partners, self.gen = a, b, partners, gen

    def __call__(self, n: int) -> tuple[Tensor, Tensor]:
        count, k0, k = self.partners.shape
        p = torch.randint(0, count, (n,), generator=self.gen).to(self.a.device)
        i = torch.randint(0, k0, (n,), generator=self.gen).to(self.a.device)
        s = torch.randint(0, k, (n,), generator=self.gen).to(self.a.device)
        return self.a[p, i], self.b[p, self.partners[p, i, s]]

    def state(self) -> dict[str, Tensor]:
        return {"a": self.a, "b": self.b, "partners": self.partners}


def draw_partners(pots, k: int, gen: torch.Generator) -> Tensor:
    r"""``k`` target indices per source row of a plan given by its potentials (``pots``, a
    :class:`bridge.ot.EntropicPotentials`), drawn from :math:`\pi(\cdot \mid x_i)` by inversion,
    in row blocks of ``pots.block_bytes``: ``(n, k)``."""
    out, step = [], pots._rows()
    for start in range(0, pots.x0.shape[0], step):
        cdf = row_cdf(pots.log_conditional(pots.x0[start : start + step]).exp())
        u = torch.rand(cdf.shape[0], k, generator=gen, dtype=cdf.dtype).to(cdf.device)
        out.append(torch.searchsorted(cdf, u).clamp_(max=cdf.shape[1] - 1))
    return torch.cat(out)


@dataclass
class _Plan:
    """One solved entropic plan between ``a`` and ``b``: its potentials, its conditional rows
    (``None`` for a plan held as potentials only) and record."""

    a: Tensor
    b: Tensor
    rows: Tensor | None  # pi(y_j | x_i)
    marginal_error: float
    n_iter: int
    solver: str
    pots: object = None  # bridge.ot.EntropicPotentials
    backend: object = None  # bridge.ot_backend.PlanBackend

    @property
    def row_ess(self) -> float:
        """Median effective sample size of the rows, ``1 / sum_j pi(y_j | x_i)^2`` (of the first
        :data:`ESS_ROWS` rows for a plan held as potentials)."""
        if self.rows is None:
            return self.pots.row_ess(ESS_ROWS)
        return float((1.0 / self.rows.pow(2).sum(dim=1)).median())


def _plan_layout(x0: Tensor, x1: Tensor, plan_size: int, plan_count: int) -> tuple[int, int, int]:
    """``(count, k0, k1)``: only as many disjoint plans as the data fill, each of at most ``plan_size``."""
    count = max(1, min(plan_count, min(x0.shape[0], x1.shape[0]) // plan_size))
    k0, k1 = min(plan_size, x0.shape[0] // count), min(plan_size, x1.shape[0] // count)
    if min(k0, k1) < 2:
        raise ValueError(f"plan_count: {count} plans leave fewer than 2 points per plan; lower it")
    return count, k0, k1


def _solve_plan(a: Tensor, b: Tensor, eps: float, tol: float, progress=None) -> _Plan:
    """Annealed log-domain Sinkhorn between ``a`` and ``b``, with its table of conditional rows
    when :func:`bridge.ot_backend.plan_backend` allows the ``k0 x k1`` table (dense), else as
    potentials only (:func:`bridge.ot_online.chunked_sinkhorn`, in float32 unless ``tol`` is below
    :data:`FLOAT32_TOL`). A sampler needs the plan's rows,
    not a certificate: ``tol`` of the mass misplaced is far below the finite-sample bias; a plan
    that is grossly off (ten times ``tol``) stops the solve, never a silent fallback, and the sweeps
    stop as soon as their rate shows they cannot get within it (:mod:`bridge.convergence`)."""
    from ..convergence import stopped_early
    from ..ot import ConvergenceError, entropic_potentials
    from ..ot_backend import plan_backend
    from ..ot_online import chunked_sinkhorn

    backend = plan_backend(a.shape[0], b.shape[0])
    kw = dict(tol=tol, max_iter=PLAN_SWEEPS, check=False, progress=progress, give_up_above=10 * tol)
    if backend.name == "dense":
        pots = entropic_potentials(a, b, eps, start="anneal", **kw)
    else:
        pots = chunked_sinkhorn(a, b, eps, dtype=torch.float32 if tol >= FLOAT32_TOL else torch.float64, **kw)
    if not pots.marginal_error <= 10 * tol:
        early = stopped_early(pots.n_iter < PLAN_SWEEPS, PLAN_SWEEPS)
        raise ConvergenceError(
            f"Sinkhorn coupling: marginal error {pots.marginal_error:.3g} after {pots.n_iter} sweeps{early} at "
            f"eps = {eps:g}; {PLANS_ADVICE}"
        )
    rows = pots.log_conditional(a).softmax(dim=1) if backend.name == "dense" else None
    return _Plan(a, b, rows, float(pots.marginal_error), int(pots.n_iter), pots.solver, pots, backend)


def _permutations(x0: Tensor, x1: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    perm0 = torch.randperm(x0.shape[0], generator=gen).to(x0.device)
    return perm0, torch.randperm(x1.shape[0], generator=gen).to(x1.device)


def first_plan(x0: Tensor, x1: Tensor, eps: float, cfg, gen: torch.Generator, progress=None) -> tuple[_Plan, float]:
    """The first plan that the Sinkhorn coupling would build (same subsets, same draws), and its
    wall time: what ``coupling="auto"`` looks at."""
    t0 = time.perf_counter()
    _, k0, k1 = _plan_layout(x0, x1, cfg.plan_size, cfg.plan_count)
    perm0, perm1 = _permutations(x0, x1, gen)
    plan = _solve_plan(x0[perm0[:k0]], x1[perm1[:k1]], eps, cfg.plan_tol, progress)
    return plan, time.perf_counter() - t0


def _sinkhorn_plans(x0: Tensor, x1: Tensor, eps: float, cfg, gen: torch.Generator, say) -> tuple[PlanPairs, dict]:
    """Up to ``cfg.plan_count`` plans on disjoint subsets of ``cfg.plan_size`` points per side.

    With ``cfg.time_budget`` set, plans after the first are only built while the plans so far,
    plus one more at their average cost, stay within ``PLAN_BUDGET_SHARE`` of the budget."""
    t0 = time.perf_counter()
    count, k0, k1 = _plan_layout(x0, x1, cfg.plan_size, cfg.plan_count)
    perm0, perm1 = _permutations(x0, x1, gen)
    budget, limited, plans = cfg.time_budget, False, []
    ticker = Progress(count * PLAN_SWEEPS, "solve", say, unit="Sinkhorn sweeps (at most) of the coupling's plans")
    for k in range(count):
        spent = time.perf_counter() - t0
        if k > 0 and budget is not None and spent * (k + 1) / k > PLAN_BUDGET_SHARE * budget:
            limited = True
            break
        sweeps = lambda it, total, k=k: ticker.update(k * PLAN_SWEEPS + it)
        plans.append(
            _solve_plan(x0[perm0[k * k0 : (k + 1) * k0]], x1[perm1[k * k1 : (k + 1) * k1]], eps, cfg.plan_tol, sweeps)
        )
        ticker.update((k + 1) * PLAN_SWEEPS)
    pairs = _plan_pairs(plans, x0.dtype, gen)
    info = {
        "coupling": "sinkhorn",
        "requested": cfg.coupling,
        "plan_size": [k0, k1],
        "plan_count": len(plans),
        "plan_count_limited_by_time_budget": limited,
        "plan_solver": (
            f"bridge.ot.entropic_potentials(start={plans[-1].solver!r})"
            if plans[-1].solver != "chunked"
            else "bridge.ot_online.chunked_sinkhorn"
        ),
        "plan_backend": plans[-1].backend.name,
        "plan_backend_reason": plans[-1].backend.reason,
        **(
            {"plan_partners_per_row": PARTNERS, "plan_dtype": str(plans[-1].pots.f.dtype).replace("torch.", "")}
            if isinstance(pairs, PartnerPairs)
            else {}
        ),
        "plan_marginal_error": max(p.marginal_error for p in plans),
        "plan_row_ess_median": plans[0].row_ess,
        "plan_iterations": max(p.n_iter for p in plans),
        "plan_wall_s": round(time.perf_counter() - t0, 3),
    }
    _report_plans(info, budget, say)
    return pairs, info


def _plan_pairs(plans: list, dtype, gen: torch.Generator) -> Coupling:
    """The coupling that draws from ``plans``: their row tables stacked, or partners drawn once."""
    a, b = torch.stack([p.a for p in plans]), torch.stack([p.b for p in plans])
    if plans[0].rows is None:
        return PartnerPairs(a, b, torch.stack([draw_partners(p.pots, PARTNERS, gen) for p in plans]), gen)
    dtype = torch.float64 if dtype == torch.float64 else torch.float32
    return PlanPairs(a, b, torch.stack([row_cdf(p.rows).to(dtype) for p in plans]), gen)


def _report_plans(info: dict, budget: float | None, say) -> None:
    k0, k1 = info["plan_size"]
    say(
        f"[solve] Sinkhorn coupling: {info['plan_count']} plan(s) on {k0} x {k1} points, marginal error <= "
        f"{info['plan_marginal_error']:.1e}, {info['plan_wall_s']:.1f}s"
        + (
            f" (fewer plans: they would take > {PLAN_BUDGET_SHARE:.0%} of the time budget)"
            if info["plan_count_limited_by_time_budget"]
            else ""
        )
    )
    if budget is not None and info["plan_wall_s"] >= budget:
        warnings.warn(
            f"solve_bridge: the Sinkhorn coupling took {info['plan_wall_s']:.3g}s, the whole time budget of "
            f"{budget:g}s: no training step will run; raise time_budget or lower plan_size",
            RuntimeWarning,
            stacklevel=4,
        )


def make_coupling(
    kind: str, x0: Tensor, x1: Tensor, eps: float, cfg, gen: torch.Generator, say
) -> tuple[Coupling, dict]:
    """The coupling ``kind`` (not ``"auto"``) on the training samples, and a record of how it
    draws (``BridgeResult.coupling``). ``cfg`` gives the plans' sizes and tolerances."""
    if kind == "independent":
        return IndependentPairs(x0, x1, gen), {"coupling": "independent"}
    if kind == "paired":
        return PairedRows({"x0": x0, "x1": x1}, gen), {"coupling": "paired"}
    if kind == "minibatch":
        info = {
            "coupling": "minibatch",
            "minibatch_size": cfg.batch_size,
            "plan_solver": "bridge.ot.minibatch_log_plan",
            "plan_tol": cfg.minibatch_tol,
            "warm_start": True,
        }
        return MinibatchPairs(x0, x1, eps, cfg.minibatch_tol, gen), info
    if kind == "sinkhorn":
        return _sinkhorn_plans(x0, x1, eps, cfg, gen, say)
    raise ValueError(f"coupling: expected independent, paired, minibatch or sinkhorn, got {kind!r}")


def restore_coupling(
    kind: str, tensors: dict, x0: Tensor, x1: Tensor, eps: float, cfg, gen: torch.Generator
) -> Coupling:
    """The coupling of a checkpoint: the fixed plans from their stored tensors (not solved again:
    row tables, or the partners of plans held as potentials), the others rebuilt and given their
    stored state."""
    if kind == "sinkhorn" and "partners" in tensors:
        return PartnerPairs(tensors["a"], tensors["b"], tensors["partners"], gen)
    if kind == "sinkhorn":
        return PlanPairs(tensors["a"], tensors["b"], tensors["cdf"], gen)
    coupling, _ = make_coupling(kind, x0, x1, eps, cfg, gen, lambda m: None)
    coupling.load_state(tensors)
    return coupling
