r"""Schrödinger bridge by max–min over interpolants (docs/math.md §5): what the solver learns, checked
against POT's entropic plan, the Gaussian closed form and the benchmark's peers.

The paper states the max–min (SI 3.39) as a theorem only; these figures are new.

* (a) ``coefficients``: alpha, beta, gamma of the learned interpolant at initialisation (the
  linear interpolant with ``gamma_0 = sqrt(2 eps t(1-t))``) and after the max–min, per dimension.
* (b) ``coupling_<problem>`` and ``fans``: the learned coupling ``(x0, X_1)`` (forward SDE) against
  POT's entropic plan (``reg = 4 eps``) on held-out samples of 8gaussians -> moons and
  gaussian -> checkerboard at eps = 0.1 (:func:`bridge.sb.report.evaluate_bridge` and its plots).
* (c) ``marginals_<problem>``: the SDE's marginals at t = 0, 1/4, 1/2, 3/4, 1 against the
  Brownian-bridge mixture of POT's plan.
* (d) ``energy``: objective and kinetic energy against the outer step for the benchmark's 2-D
  Gaussian problem (non-commuting covariances, eps = 0.5), with the closed form
  :math:`\mathrm{KE}^\star = \int_0^1 \mathbb E|u^\star|^2 dt` (:meth:`GaussianSB.kinetic_energy`)
  and the saddle value of the objective, :math:`-\mathrm{KE}^\star/2` (docs/math.md §5.2: for a fixed
  interpolant the inner value is :math:`-\tfrac12\int\mathbb E|b_F|^2`). The exact kinetic
  energy of each iterate's interpolant path is :func:`gaussian_path_kinetic`.
* (e) ``walltime``: cBW2-UVP against training wall time for bridge, POT out of sample and SF2M
  on one problem of ``benchmarks/sb.py`` (its functions, loaded from the file).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ._common import COLORS, main_for

NAME = "schrodinger"
PAPER = "new (the paper states the max-min as a theorem only)"

EPS_2D = 0.1
PROBLEMS_2D = ("8gaussians_moons", "gaussian_checkerboard")
LABELS_2D = {"8gaussians_moons": "8gaussians -> moons", "gaussian_checkerboard": "gaussian -> checkerboard"}
GAUSS_RUNS = ("gauss_independent", "gauss_sinkhorn")
LABELS_GAUSS = {
    "gauss_independent": "Gaussian 2-D, independent coupling (the paper's max-min)",
    "gauss_sinkhorn": "Gaussian 2-D, Sinkhorn coupling (what the default 'auto' picks here)",
}
COUPLING_FLOOR_FACTOR = 1.0  # learned coupling "close" = within POT's own sampling noise
MARGINAL_FLOOR_FACTOR = 2.0  # energy distance within 2x that of two independent target samples
KINETIC_TOL = 0.05  # "within 5% of the closed form"

# quick: CI smoke size; full: about 10 minutes of one CPU thread (scaled down, see the record).
# gauss_independent is the paper's max-min alone: no coupling refinement (SBConfig.refine_rounds).
SIZES = {
    True: dict(
        n_train=1024, n_test=150, per_point=4, sde_steps=60, fans=5, fan_samples=20,
        sb2d=dict(outer_steps=15, warmup_steps=20, inner_steps=4, hidden=64, depth=2, plan_size=256, plan_count=1,
                  log_every=1),
        gauss_n=2048, ke_points=1000, ke_steps=50, family_steps=200,
        gauss_independent=dict(outer_steps=40, warmup_steps=20, inner_steps=3, hidden=64, depth=2,
                               coupling="independent", refine_rounds=0, log_every=1),
        gauss_sinkhorn=dict(outer_steps=15, warmup_steps=20, inner_steps=4, hidden=64, depth=2, plan_size=256,
                            plan_count=1, log_every=1, coupling="sinkhorn"),
        wall=dict(problem="mix2-r1", budgets=[1.0, 3.0], n_train=1024, pot_sizes=[256, 1024], test_points=40,
                  per_point=40, sde_steps=40, plan_size=256),
    ),
    False: dict(
        n_train=4096, n_test=500, per_point=8, sde_steps=200, fans=6, fan_samples=40,
        sb2d=dict(outer_steps=300, plan_size=1024, plan_count=2, log_every=5),
        gauss_n=8192, ke_points=4000, ke_steps=200, family_steps=1000,
        gauss_independent=dict(outer_steps=600, inner_steps=5, coupling="independent", refine_rounds=0, log_every=5),
        gauss_sinkhorn=dict(outer_steps=200, plan_size=1024, plan_count=2, log_every=5, coupling="sinkhorn"),
        wall=dict(problem="mix2-r1", budgets=[4.0, 12.0, 36.0], n_train=4000, pot_sizes=[500, 1000, 2000, 4000],
                  test_points=100, per_point=100, sde_steps=100, plan_size=1024),
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------------------
# numeric helpers
# ----------------------------------------------------------------------------------------
def _diag_coef(c: torch.Tensor, t: torch.Tensor, d: int) -> torch.Tensor:
    """A schedule value as ``(T, d)`` (scalar coefficients broadcast)."""
    c = torch.as_tensor(c, dtype=t.dtype)
    if c.dim() == 0:
        return c.expand(t.shape[0], d)
    return c.unsqueeze(-1).expand(t.shape[0], d) if c.dim() == 1 else c


def gaussian_path_energy(interp, t, a, A, b, B, eps: float, cross=None) -> torch.Tensor:
    r""":math:`\mathbb E|b_F(t, x_t)|^2` of a spatially linear interpolant between Gaussians, ``(T,)``.

    With ``x_t = D_alpha x_0 + D_beta x_1 + D_gamma z`` (diagonal coefficient matrices),
    ``x_0 ~ N(a, A)``, ``x_1 ~ N(b, B)``, ``Cov(x_0, x_1) = X`` (``cross``; 0: independent) and
    ``z ~ N(0, I)`` independent, ``x_t`` is Gaussian with mean ``m_t`` and covariance

    .. math::
        C_t = D_\alpha A D_\alpha + D_\beta B D_\beta + D_\alpha X D_\beta + D_\beta X^\top D_\alpha + D_\gamma^2,

    and :math:`b = \mathbb E[\partial_t I + \dot\gamma z \mid x_t] = \dot m_t + S_t C_t^{-1}(x - m_t)` with
    :math:`S_t = \mathrm{Cov}(\partial_t I + \dot\gamma z, x_t)` (the same form with dotted left factors
    and :math:`D_{\gamma\dot\gamma}`), :math:`s = -C_t^{-1}(x - m_t)`, so
    :math:`b_F = b + \epsilon s = \dot m_t + (S_t - \epsilon I) C_t^{-1}(x - m_t)` and

    .. math::
        \mathbb E|b_F|^2 = |\dot m_t|^2
            + \operatorname{tr}\big((S_t - \epsilon I) C_t^{-1} (S_t - \epsilon I)^\top\big).

    ``interp`` needs ``alpha, beta, alpha_dot, beta_dot, gamma, gamma_gamma_dot`` (scalar or
    per-dimension); ``gamma_gamma_dot`` keeps the ends finite. Differentiable in the
    interpolant's parameters.
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    A, B = torch.as_tensor(A, dtype=torch.float64), torch.as_tensor(B, dtype=torch.float64)
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    d = A.shape[0]
    X = torch.zeros_like(A) if cross is None else torch.as_tensor(cross, dtype=torch.float64)
    al, be = _diag_coef(interp.alpha(t), t, d), _diag_coef(interp.beta(t), t, d)
    ald, bed = _diag_coef(interp.alpha_dot(t), t, d), _diag_coef(interp.beta_dot(t), t, d)
    g, ggd = _diag_coef(interp.gamma(t), t, d), _diag_coef(interp.gamma_gamma_dot(t), t, d)
    Da, Db, Dad, Dbd = (torch.diag_embed(v.double()) for v in (al, be, ald, bed))
    Xt = X.mT
    C = Da @ A @ Da + Db @ B @ Db + Da @ X @ Db + Db @ Xt @ Da + torch.diag_embed(g.double() ** 2)
    S = Dad @ A @ Da + Dbd @ B @ Db + Dad @ X @ Db + Dbd @ Xt @ Da + torch.diag_embed(ggd.double())
    M = S - eps * torch.eye(d, dtype=torch.float64)
    mdot = ald.double() * a + bed.double() * b
    # tr(M C^{-1} M^T) = tr(M^T M C^{-1})... computed as tr(M (C^{-1} M^T)) with a solve
    quad = torch.einsum("tij,tji->t", M, torch.linalg.solve(C, M.mT))
    return (mdot**2).sum(-1) + quad


def gaussian_path_kinetic(interp, a, A, b, B, eps: float, cross=None, *, nodes: int = 64) -> float:
    r"""Kinetic energy :math:`\int_0^1 \mathbb E|b_F|^2 dt` of the interpolant path
    (:func:`gaussian_path_energy`), by ``nodes``-point Gauss–Legendre quadrature on [0, 1].

    Every such path is admissible for the SB (docs/math.md §5.2), so this is ``>= KE*``, with equality for
    the linear interpolant, ``gamma = sqrt(2 eps t(1-t))`` and ``cross`` the SB plan's ``C``.
    """
    with torch.no_grad():
        return float(_kinetic_tensor(interp, a, A, b, B, eps, cross, nodes))


@functools.lru_cache(maxsize=4)
def _legendre01(nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return torch.as_tensor(0.5 * (x + 1.0), dtype=torch.float64), torch.as_tensor(0.5 * w, dtype=torch.float64)


def _kinetic_tensor(interp, a, A, b, B, eps, cross, nodes: int) -> torch.Tensor:
    t, w = _legendre01(nodes)
    return (w * gaussian_path_energy(interp, t, a, A, b, B, eps, cross)).sum()


def family_optimum(interp, a, A, b, B, eps: float, cross=None, *, steps: int = 1500, lr: float = 1e-2) -> float:
    """Minimise :func:`gaussian_path_kinetic` directly over ``interp``'s parameters (Adam, in place):
    the best kinetic energy the interpolant family can reach for this coupling, i.e. the value the
    max-min would attain with an exact inner solve and exact expectations. Returns it."""
    opt = torch.optim.Adam([p for p in interp.parameters() if p.requires_grad], lr=lr)
    for k in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * k / steps)))
        loss = _kinetic_tensor(interp, a, A, b, B, eps, cross, 64)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return gaussian_path_kinetic(interp, a, A, b, B, eps, cross)


def running_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of ``y`` over ``window`` points (shrinking at the ends)."""
    y = np.asarray(y, dtype=float)
    h = max(0, window // 2)
    c = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.clip(np.arange(y.size) - h, 0, y.size)
    hi = np.clip(np.arange(y.size) + h + 1, 0, y.size)
    return (c[hi] - c[lo]) / (hi - lo)


def spread_points(x: torch.Tensor, k: int, *, central: float = 0.8) -> np.ndarray:
    """Indices of ``k`` rows of ``x`` spread out by greedy farthest-point selection among the
    ``central`` fraction of rows nearest the mean (typical points, not the tails); the first is
    the row nearest the mean."""
    x = x.double()
    r = ((x - x.mean(0)) ** 2).sum(1)
    pool = torch.nonzero(r <= torch.quantile(r, central)).squeeze(1)
    idx = [int(r.argmin())]
    dist = ((x[pool] - x[idx[0]]) ** 2).sum(1)
    for _ in range(1, min(k, pool.numel())):
        j = int(dist.argmax())
        idx.append(int(pool[j]))
        dist = torch.minimum(dist, ((x[pool] - x[idx[-1]]) ** 2).sum(1))
    return np.asarray(idx)


# ----------------------------------------------------------------------------------------
# plumbing
# ----------------------------------------------------------------------------------------
def load_benchmark():
    """``benchmarks/sb.py`` as a module. ``benchmarks`` is a folder of scripts (no ``__init__.py``,
    not installed), so it is loaded from its file path (as ``tests/test_benchmarks_sb.py`` does)."""
    name = "benchmarks_sb"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sb.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the file executes
    spec.loader.exec_module(mod)
    return mod


class OuterSnapshots:
    """The interpolant's parameters after every outer (ascent) step of ``solve_bridge``.

    Uses torch's global optimizer-step hook and keeps only steps of the optimizer that owns the
    interpolant's parameters (the inner optimizer is ignored). Rows: ``(n_params, *shape)``.
    """

    def __init__(self, interp: torch.nn.Module):
        self.names = [n for n, _ in interp.named_parameters()]
        self.params = [p for _, p in interp.named_parameters()]
        self.ids = {id(p) for p in self.params}
        self.rows: list[np.ndarray] = []

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.handle = register_optimizer_step_post_hook(self._hook)
        return self

    def _hook(self, opt, args, kwargs):
        if any(id(p) in self.ids for grp in opt.param_groups for p in grp["params"]):
            self.rows.append(np.stack([p.detach().cpu().double().numpy().copy() for p in self.params]))

    def __exit__(self, *exc):
        self.handle.remove()

    def array(self) -> np.ndarray:
        shape = (0, len(self.params), *self.params[0].shape)
        return np.stack(self.rows) if self.rows else np.zeros(shape)


def _set_params(interp, names, values) -> None:
    with torch.no_grad():
        for n, v in zip(names, values):
            getattr(interp, n).copy_(torch.as_tensor(v))


def _curves(interp, t: torch.Tensor, d: int) -> np.ndarray:
    """``(3, T, d)``: alpha, beta, gamma on the times ``t``."""
    with torch.no_grad():
        out = [_diag_coef(f(t), t, d) for f in (interp.alpha, interp.beta, interp.gamma)]
    return torch.stack(out).double().numpy()


def _history(res) -> dict[str, np.ndarray]:
    recs = [r for r in res.history if isinstance(r, dict) and "step" in r]
    return {k: np.asarray([float(r[k]) for r in recs]) for k in ("step", "objective", "kinetic", "wall_s")}


def _progress(log, tag: str, every: int):
    """A ``progress`` callback that passes solver lines through sparsely."""
    count = [0]

    def say(msg: str) -> None:
        count[0] += 1
        if not msg.startswith("[solve] outer") or count[0] % every == 1:
            log(f"{tag}: {msg.removeprefix('[solve] ')}")

    return say


def _solve(x0, x1, eps: float, cfg, log, tag: str):
    from bridge.sb import build_interpolant, solve_bridge

    interp = build_interpolant(cfg, x0.shape[1], eps)
    with OuterSnapshots(interp) as snaps:
        res = solve_bridge(x0, x1, eps, interpolant=interp, config=cfg, progress=_progress(log, tag, 20))
    return res, snaps


def _cpu() -> float:
    return time.process_time()


# ----------------------------------------------------------------------------------------
# compute
# ----------------------------------------------------------------------------------------
def _problem_2d(key: str, sz: dict, seed: int, t_grid, log):
    from bridge.data import checkerboard, eight_gaussians, gaussian, moons
    from bridge.ot import entropic_plan
    from bridge.sb import SBConfig
    from bridge.sb.report import evaluate_bridge

    f0, f1 = {"8gaussians_moons": (eight_gaussians, moons), "gaussian_checkerboard": (gaussian, checkerboard)}[key]
    g = torch.Generator().manual_seed(1000 * seed + PROBLEMS_2D.index(key))
    n, m = sz["n_train"], sz["n_test"]
    x0, x1 = f0(n, generator=g), f1(n, generator=g)
    x0t, x1t = f0(m, generator=g), f1(m, generator=g)
    cfg = SBConfig(seed=seed, drift_family="network", **sz["sb2d"])  # the paper's max-min
    t0, c0 = time.perf_counter(), _cpu()
    res, snaps = _solve(x0, x1, EPS_2D, cfg, log, key)
    solve_wall, solve_cpu = time.perf_counter() - t0, _cpu() - c0
    from bridge.sb import build_interpolant

    before = _curves(build_interpolant(cfg, 2, EPS_2D), t_grid, 2)
    after = _curves(res.interpolant, t_grid, 2)
    log(f"{key}: evaluating against POT on {m} held-out points")
    gen = torch.Generator().manual_seed(seed + 101)
    ev = evaluate_bridge(
        res, x0t, x1t, x1_floor=x1[:m], per_point=sz["per_point"], sde_steps=sz["sde_steps"],
        sinkhorn_points=m, generator=gen,
    )  # fmt: skip
    # a few source points, K partners each: learned SDE vs POT's conditional pi(y | x0)
    idx = spread_points(ev.x0, sz["fans"])
    xf = ev.x0[idx]
    model_fans = res.sample(xf.to(x0.dtype), per_point=sz["fan_samples"], steps=sz["sde_steps"], generator=gen)
    plan = entropic_plan(ev.x0, ev.x1, EPS_2D)
    ref_fans = plan.conditional_sample(xf, sz["fan_samples"], generator=torch.Generator().manual_seed(seed + 103))
    p = f"{key}__"
    arrays = {
        p + "x0": ev.x0.numpy(), p + "x1": ev.x1.numpy(), p + "model_x1": ev.model_x1.numpy(),
        p + "reference_x1": ev.reference_x1.numpy(), p + "times": np.asarray(ev.times),
        p + "model_marginals": ev.model_marginals.numpy(), p + "reference_marginals": ev.reference_marginals.numpy(),
        p + "fan_x0": xf.numpy(), p + "fan_model": model_fans.double().numpy(), p + "fan_reference": ref_fans.numpy(),
        p + "fan_model_map": model_fans.double().mean(1).numpy(),
        p + "fan_reference_map": plan.barycentric_map(xf).numpy(),
        p + "curves_before": before, p + "curves_after": after, p + "snapshots": snaps.array(),
    }  # fmt: skip
    arrays.update({p + "history_" + k: v for k, v in _history(res).items()})
    mt = ev.metrics
    cp, marg = mt["coupling"], mt["marginal"]
    ed_by_t = mt["marginals_by_t"]["energy_distance"] or {}
    rec = {
        "label": LABELS_2D[key],
        "eps": EPS_2D,
        "n_train": n,
        "n_test": m,
        "outer_steps": res.steps,
        "stopped_by": res.stopped_by,
        "solve_wall_s": round(solve_wall, 2),
        "solve_cpu_s": round(solve_cpu, 2),
        "coupling_info": res.coupling,
        "evaluation_wall_s": round(ev.wall_s, 2),
        "coupling": {k: cp.get(k) for k in (
            "cross_covariance_rel_error", "barycentric_map_l2_uvp", "barycentric_map_l2_uvp_raw",
            "model_transport_cost", "pot_transport_cost", "reference_floor")},
        "marginal": marg,
        "marginals_by_t_energy_distance": ed_by_t,
        "kinetic": {k: mt["kinetic"].get(k) for k in ("mean_last_quarter", "path", "kl_path")},
        "coefficient_change_max": float(np.abs(after - before).max()),
        "settings": ev.settings,
        "errors": ev.errors,
    }  # fmt: skip
    floor = cp.get("reference_floor") or {}
    close = (
        cp.get("barycentric_map_l2_uvp") is not None
        and floor.get("barycentric_map_l2_uvp") is not None
        and cp["barycentric_map_l2_uvp"] <= COUPLING_FLOOR_FACTOR * floor["barycentric_map_l2_uvp"]
        and cp["cross_covariance_rel_error"] <= COUPLING_FLOOR_FACTOR * floor["cross_covariance_rel_error"]
    )
    ed_floor = (marg.get("noise_floor") or {}).get("energy_distance")
    ed_max = max(ed_by_t.values()) if ed_by_t else None
    match = ed_max is not None and ed_floor is not None and ed_max <= MARGINAL_FLOOR_FACTOR * ed_floor
    rec["checks"] = {"coupling_within_pot_noise": bool(close), "marginals_within_noise": bool(match),
                     "max_energy_distance_over_t": ed_max, "energy_distance_floor": ed_floor}  # fmt: skip
    bm, bm_f = cp.get("barycentric_map_l2_uvp"), floor.get("barycentric_map_l2_uvp")
    cc, cc_f = cp.get("cross_covariance_rel_error"), floor.get("cross_covariance_rel_error")
    log(
        f"{key}: bary-map L2-UVP {bm:.3g}% (POT noise {bm_f:.3g}%), cross-cov err {cc:.3g} (POT noise {cc_f:.3g}), "
        f"max ED over t {ed_max:.3g} (floor {ed_floor:.3g})"
    )
    return arrays, rec, cfg


def _gaussian_runs(sz: dict, seed: int, bench, t_grid, log):
    from bridge.metrics import cross_covariance_error, kinetic_energy
    from bridge.sb import SBConfig, build_interpolant

    bargs = bench.parse_args(["--problems", "gauss2", "--n-train", str(sz["gauss_n"]), "--test-points", "4",
                              "--per-point", "2", "--cov-points", "4", "--seed", str(seed)])  # fmt: skip
    prob = bench.build_problem("gauss2", bargs)
    ref = prob.ref
    ke_star = ref.kinetic_energy()
    arrays: dict = {}
    rec: dict = {
        "problem": "benchmarks/sb.py gauss2 (random rotations, eigenvalues in [0.5, 2], non-commuting covariances)",
        "eps": ref.eps,
        "a": ref.a.tolist(), "A": ref.A.tolist(), "b": ref.b.tolist(), "B": ref.B.tolist(), "C": ref.C.tolist(),
        "commutator_norm": float(torch.linalg.matrix_norm(ref.A @ ref.B - ref.B @ ref.A)),
        "n_train": sz["gauss_n"],
        "kinetic_closed_form": ke_star,
        "objective_at_saddle": -0.5 * ke_star,
        "runs": {},
    }  # fmt: skip
    g = torch.Generator().manual_seed(seed + 301)
    xs = ref.a + torch.randn(sz["ke_points"], 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(ref.A).T
    floor_y = ref.sample_conditional(xs, 1, generator=g)[:, 0]
    rec["cross_cov_error_floor"] = cross_covariance_error(xs, floor_y, ref.C)
    for run in GAUSS_RUNS:
        cfg = SBConfig(seed=seed, drift_family="network", **sz[run])
        cross = None if cfg.coupling == "independent" else ref.C
        t0, c0 = time.perf_counter(), _cpu()
        res, snaps = _solve(prob.x0_train, prob.x1_train, ref.eps, cfg, log, run)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        rows = snaps.array()
        probe = build_interpolant(cfg, 2, ref.eps)
        exact = [gaussian_path_kinetic(probe, ref.a, ref.A, ref.b, ref.B, ref.eps, cross)]  # step 0: the start
        for row in rows:
            _set_params(probe, snaps.names, row)
            exact.append(gaussian_path_kinetic(probe, ref.a, ref.A, ref.b, ref.B, ref.eps, cross))
        # the final drift along its own SDE paths, and its coupling against the closed form
        gen = torch.Generator().manual_seed(seed + 303)
        end, traj = res.sample(xs.float(), per_point=1, steps=sz["ke_steps"], generator=gen, trajectory=True)
        grid = torch.linspace(0.0, 1.0, sz["ke_steps"] + 1)
        ke_path = kinetic_energy(res.drift, traj[:, :, 0], grid)
        cc_err = cross_covariance_error(xs, end[:, 0].double(), ref.C)
        family = None
        if cross is None:  # the best the family can do with independent x0, x1 (exact, no network)
            best = build_interpolant(cfg, 2, ref.eps)
            family = family_optimum(best, ref.a, ref.A, ref.b, ref.B, ref.eps, steps=sz["family_steps"])
            arrays[f"{run}__curves_family"] = _curves(best, t_grid, 2)
        hist = _history(res)
        tail = max(1, hist["objective"].size // 4)
        p = f"{run}__"
        arrays.update({p + "history_" + k: v for k, v in hist.items()})
        arrays[p + "exact_kinetic"] = np.asarray(exact)
        arrays[p + "snapshots"] = rows
        arrays[p + "curves_before"] = _curves(build_interpolant(cfg, 2, ref.eps), t_grid, 2)
        arrays[p + "curves_after"] = _curves(res.interpolant, t_grid, 2)
        obj_tail = float(hist["objective"][-tail:].mean())
        r = {
            "label": LABELS_GAUSS[run],
            "config": asdict(cfg),
            "coupling_info": res.coupling,
            "outer_steps": res.steps,
            "solve_wall_s": round(wall, 2),
            "solve_cpu_s": round(cpu, 2),
            "exact_kinetic_start": exact[0],
            "exact_kinetic_final": exact[-1],
            "exact_kinetic_min": float(min(exact)),
            "family_infimum_kinetic": family,
            "family_infimum_what": None
            if family is None
            else f"direct Adam minimisation ({sz['family_steps']} steps) of the exact kinetic energy over the same "
            "Fourier family, independent x0, x1",
            "exact_kinetic_what": "kinetic energy of the interpolant path itself (gaussian_path_kinetic), "
            + ("independent x0, x1" if cross is None else "x0, x1 from the population SB plan (cross-covariance C)"),
            "path_kinetic_final": ke_path,
            "path_kinetic_rel_error": (ke_path - ke_star) / ke_star,
            "history_kinetic_mean_last_quarter": float(hist["kinetic"][-tail:].mean()),
            "objective_mean_last_quarter": obj_tail,
            "objective_rel_error_to_saddle": (obj_tail + 0.5 * ke_star) / (0.5 * ke_star),
            "cross_cov_error": cc_err,
            "coefficient_change_max": float(np.abs(arrays[p + "curves_after"] - arrays[p + "curves_before"]).max()),
        }
        rec["runs"][run] = r
        log(
            f"{run}: exact interpolant KE {exact[0]:.4f} -> {exact[-1]:.4f}, path KE {ke_path:.4f}, "
            f"closed form {ke_star:.4f}; objective (last quarter) {obj_tail:.4f} vs {-0.5 * ke_star:.4f}; "
            f"cross-cov error {100 * cc_err:.2f}% (floor {100 * rec['cross_cov_error_floor']:.2f}%)"
        )
    return arrays, rec


def _walltime(sz: dict, seed: int, bench, log):
    w = sz["wall"]
    argv = ["--problems", w["problem"], "--n-train", str(w["n_train"]), "--test-points", str(w["test_points"]),
            "--per-point", str(w["per_point"]), "--sde-steps", str(w["sde_steps"]), "--seed", str(seed),
            "--budget", str(w["budgets"][0]), "--bridge-set", f"plan_size={w['plan_size']}",
            "--bridge-set", "plan_count=1", "--bridge-set", "log_every=0", "--cov-points", "1000"]  # fmt: skip
    args = bench.parse_args(argv)
    bench.warm_up()
    prob = bench.build_problem(w["problem"], args)
    floor = bench.floor(prob, args)
    log(f"walltime: {w['problem']} floor cBW2-UVP {floor['cbw2_uvp']:.3f}%")
    rows: dict[str, list] = {"bridge": [], "sf2m": [], "pot": []}

    def run(method: str, p, label: str) -> dict:
        try:
            out = bench.METHODS[method](p, args)
        except Exception as err:  # noqa: BLE001 - a failed method is a result (as in benchmarks/sb.py)
            out = {"error": f"{type(err).__name__}: {err}"}
        msg = out.get("error") or f"cBW2-UVP {out['cbw2_uvp']:.3f}%, train {out['train_s']:.1f}s"
        log(f"walltime: {method} {label}: {msg}")
        return out

    for budget in w["budgets"]:
        args.budget = float(budget)
        for method in ("bridge", "sf2m"):
            out = run(method, prob, f"budget {budget:g}s")
            keep = {k: out.get(k) for k in ("cbw2_uvp", "train_s", "sample_s", "error", "outer_steps", "train_steps")}
            rows[method].append({"budget_s": budget, **keep})
            if method == "sf2m":
                rows["sf2m_implementation"] = out.get("implementation")
    for n in w["pot_sizes"]:
        p = dataclasses.replace(prob, x0_train=prob.x0_train[:n], x1_train=prob.x1_train[:n])
        out = run("pot", p, f"n = {n}")
        keep = {k: out.get(k) for k in ("cbw2_uvp", "train_s", "sample_s", "error", "marginal_error", "converged")}
        rows["pot"].append({"n_train": n, **keep, "implementation": out.get("implementation")})
    rec = {
        "problem": w["problem"],
        "eps": prob.eps,
        "benchmark_argv": argv,
        "floor_cbw2_uvp": floor["cbw2_uvp"],
        "results": rows,
        "what": "cBW2-UVP (%) of test_points x per_point conditional samples against the exact conditional "
        "moments; wall time = training (bridge: Sinkhorn coupling + max-min; SF2M: training; POT: Sinkhorn "
        "on n_train points), sampling excluded (sample_s)",
    }
    arrays = {}
    for method in ("bridge", "sf2m", "pot"):
        arrays[f"wall__{method}_train_s"] = np.asarray([_nan(r["train_s"]) for r in rows[method]])
        arrays[f"wall__{method}_cbw2"] = np.asarray([_nan(r["cbw2_uvp"]) for r in rows[method]])
    return arrays, rec


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def compute(args, log):
    sz = SIZES[bool(args.quick)]
    seed = int(args.seed)
    bench = load_benchmark()
    t_grid = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    load0 = os.getloadavg()
    cpu0 = _cpu()
    arrays: dict = {"t_grid": t_grid.numpy()}
    record: dict = {"config": {k: v for k, v in sz.items()}, "problems_2d": {}, "timing": {}}
    record["config"]["eps_2d"] = EPS_2D
    record["config"]["scale_down"] = (
        "against the solver's and benchmark's defaults: 2-D problems 4096 training points per side, 300 outer "
        "steps (default 1000), Sinkhorn coupling 2 plans of 1024 (default 4 x 2048), evaluation on 500 held-out "
        "points with K = 8 SDE samples and 200 Heun steps; Gaussian 8192 points per side, independent run 600 "
        "outer x 5 inner steps (default 10 inner), Sinkhorn run 200 outer steps; walltime: budgets 4/12/36 s "
        "(benchmark default 300 s), n_train 4000 (10000), 100 x 100 test samples (500 x 500), 100 SDE steps (200), "
        "bridge plan 1 x 1024 so that the coupling fits the smallest budget. --quick: far smaller (smoke test only)."
    )
    record["config"]["thresholds"] = {
        "coupling_close": f"bridge's barycentric-map L2-UVP and cross-covariance error <= {COUPLING_FLOOR_FACTOR:g} x "
        "those of POT's plan to an independent target sample of the same size (the reference's own noise)",
        "marginals_match": f"max over t of the energy distance <= {MARGINAL_FLOOR_FACTOR:g} x that of two "
        "independent target samples of the same size",
        "kinetic": f"relative error <= {KINETIC_TOL:.0%}",
    }
    for key in PROBLEMS_2D:
        t0 = _cpu()
        a, r, cfg = _problem_2d(key, sz, seed, t_grid, log)
        arrays.update(a)
        r["config"] = asdict(cfg)
        record["problems_2d"][key] = r
        record["timing"][key + "_cpu_s"] = round(_cpu() - t0, 1)
    t0 = _cpu()
    a, record["gaussian"] = _gaussian_runs(sz, seed, bench, t_grid, log)
    arrays.update(a)
    record["timing"]["gaussian_cpu_s"] = round(_cpu() - t0, 1)
    t0 = _cpu()
    a, record["walltime"] = _walltime(sz, seed, bench, log)
    arrays.update(a)
    record["timing"]["walltime_cpu_s"] = round(_cpu() - t0, 1)
    record["timing"]["total_cpu_s"] = round(_cpu() - cpu0, 1)
    record["timing"]["load_average_start_end"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    record["findings"], record["numbers"] = _findings(record)
    record["notes"] = _notes(record)
    return arrays, record


def _findings(rec: dict):
    find, num = {}, {}
    for key, r in rec["problems_2d"].items():
        cp, fl = r["coupling"], r["coupling"].get("reference_floor") or {}
        find[f"learned coupling within POT's own sampling noise ({r['label']}, eps = {EPS_2D:g})"] = r["checks"][
            "coupling_within_pot_noise"
        ]
        find[f"SDE marginals match the Brownian-bridge mixture of POT's plan ({r['label']})"] = r["checks"][
            "marginals_within_noise"
        ]
        num[key] = {
            "barycentric_map_l2_uvp_pct": cp.get("barycentric_map_l2_uvp"),
            "pot_noise_barycentric_map_l2_uvp_pct": fl.get("barycentric_map_l2_uvp"),
            "cross_cov_rel_error": cp.get("cross_covariance_rel_error"),
            "pot_noise_cross_cov_rel_error": fl.get("cross_covariance_rel_error"),
            "transport_cost_model_vs_pot": [cp.get("model_transport_cost"), cp.get("pot_transport_cost")],
            "max_energy_distance_over_t": r["checks"]["max_energy_distance_over_t"],
            "energy_distance_floor": r["checks"]["energy_distance_floor"],
            "coefficient_change_max": r["coefficient_change_max"],
        }
    gs = rec["gaussian"]
    ke = gs["kinetic_closed_form"]
    ind, snk = gs["runs"]["gauss_independent"], gs["runs"]["gauss_sinkhorn"]
    find["max-min lowers the kinetic energy of the interpolant path (Gaussian, independent coupling)"] = (
        ind["exact_kinetic_final"] < ind["exact_kinetic_start"]
    )
    find[f"interpolant path's kinetic energy within {KINETIC_TOL:.0%} of the closed form (independent coupling)"] = (
        abs(ind["exact_kinetic_final"] - ke) / ke <= KINETIC_TOL
    )
    for run, r in gs["runs"].items():
        tag = "independent" if run == "gauss_independent" else "Sinkhorn"
        find[f"learned SDE's kinetic energy within {KINETIC_TOL:.0%} of the closed form ({tag} coupling)"] = (
            abs(r["path_kinetic_rel_error"]) <= KINETIC_TOL
        )
        find[f"objective within {KINETIC_TOL:.0%} of its saddle value -KE*/2 ({tag} coupling)"] = (
            abs(r["objective_rel_error_to_saddle"]) <= KINETIC_TOL
        )
    gap0 = ind["exact_kinetic_start"] - ke
    num["gaussian"] = {
        "kinetic_closed_form": ke,
        "independent_exact_kinetic_start_final": [ind["exact_kinetic_start"], ind["exact_kinetic_final"]],
        "independent_gap_closed_fraction": (ind["exact_kinetic_start"] - ind["exact_kinetic_final"]) / gap0
        if gap0 > 0
        else None,
        "path_kinetic_rel_error": {k: r["path_kinetic_rel_error"] for k, r in gs["runs"].items()},
        "objective_rel_error_to_saddle": {k: r["objective_rel_error_to_saddle"] for k, r in gs["runs"].items()},
        "cross_cov_error": {k: r["cross_cov_error"] for k, r in gs["runs"].items()},
        "cross_cov_error_floor": gs["cross_cov_error_floor"],
        "sinkhorn_exact_kinetic_start_final": [snk["exact_kinetic_start"], snk["exact_kinetic_final"]],
    }
    wt = rec["walltime"]["results"]
    br = [r["cbw2_uvp"] for r in wt["bridge"]]
    sf = [r["cbw2_uvp"] for r in wt["sf2m"]]
    po = [r["cbw2_uvp"] for r in wt["pot"] if r["cbw2_uvp"] is not None]
    ok = all(v is not None for v in br)
    find["bridge's cBW2-UVP decreases with wall time (largest budget below the smallest)"] = bool(ok and br[-1] < br[0])
    find["bridge at least as accurate as SF2M at the largest budget"] = bool(
        ok and sf[-1] is not None and br[-1] <= sf[-1]
    )
    find["bridge at least as accurate as POT's best (largest n_train)"] = bool(ok and po and br[-1] <= min(po))
    num["walltime"] = {
        "problem": rec["walltime"]["problem"],
        "floor_pct": rec["walltime"]["floor_cbw2_uvp"],
        "bridge_pct": br,
        "sf2m_pct": sf,
        "pot_pct": [r["cbw2_uvp"] for r in wt["pot"]],
        "budgets_s": [r["budget_s"] for r in wt["bridge"]],
        "pot_n_train": [r["n_train"] for r in wt["pot"]],
        "pot_train_s": [r["train_s"] for r in wt["pot"]],
    }
    return find, num


def _notes(rec: dict) -> list[str]:
    notes = [
        "benchmarks/ is a folder of scripts without __init__.py: its functions (build_problem, floor, run_bridge, "
        "run_pot, run_sf2m, warm_up) are loaded from benchmarks/sb.py by importlib.",
        f"SF2M ran as: {rec['walltime']['results'].get('sf2m_implementation')}",
        "The 2-D problems and gauss_sinkhorn use the solver's default Sinkhorn coupling (its start is already the "
        "SB of the empirical plan, so the outer loop moves the coefficients little); gauss_independent is the "
        "paper's max-min with independent x0, x1, where the interpolant has to move.",
        "Wall times are on a shared 2-core machine (load average at start/end in timing); cpu_s is the process CPU "
        "time. The walltime panel's budgets are wall-clock, as in benchmarks/sb.py.",
    ]
    for key, r in rec["problems_2d"].items():
        cp, fl, ck = r["coupling"], r["coupling"].get("reference_floor") or {}, r["checks"]
        ed = r["marginals_by_t_energy_distance"]
        worst = max(ed, key=ed.get) if ed else None
        notes.append(
            f"{key}: barycentric-map L2-UVP {cp['barycentric_map_l2_uvp']:.3g}% of tr Cov(target) (POT's own noise "
            f"{fl.get('barycentric_map_l2_uvp', float('nan')):.3g}%), cross-covariance error "
            f"{100 * cp['cross_covariance_rel_error']:.2g}% "
            f"(POT's {100 * fl.get('cross_covariance_rel_error', 0):.2g}%), transport cost "
            f"{cp['model_transport_cost']:.3f} vs POT's {cp['pot_transport_cost']:.3f}; energy distance largest at "
            f"t = {worst} ({ck['max_energy_distance_over_t']:.3g}, floor {ck['energy_distance_floor']:.3g}). "
            f"{r['outer_steps']} outer steps in {r['solve_wall_s']:.0f} s."
        )
    gs = rec["gaussian"]
    ke = gs["kinetic_closed_form"]
    ind = gs["runs"]["gauss_independent"]
    fam = ind.get("family_infimum_kinetic")
    if fam is not None:
        notes.append(
            f"gauss_independent: exact kinetic energy of the interpolant path {ind['exact_kinetic_start']:.4f} -> "
            f"{ind['exact_kinetic_final']:.4f}; the family's infimum (direct minimisation of the exact energy) is "
            f"{fam:.4f}, {100 * (fam - ke) / ke:.1f}% above KE* = {ke:.4f}: with independent x0, x1 the "
            "per-dimension Fourier interpolant does not reach the SB of these non-commuting Gaussians (numerically), "
            f"and the max-min ends {100 * (ind['exact_kinetic_final'] - fam) / fam:.1f}% above the family's best. "
            "The max-min's coefficients and the family optimum's differ by far more than their energies: the "
            "energy is flat in the coefficients, which are a poor convergence diagnostic."
        )
    for run, r in gs["runs"].items():
        notes.append(
            f"{run}: the learned SDE's kinetic energy along its own paths is {r['path_kinetic_final']:.4f} "
            f"({100 * r['path_kinetic_rel_error']:+.1f}% vs KE*; includes the drift network's error), objective over "
            f"the last quarter {r['objective_mean_last_quarter']:.4f} vs -KE*/2 = {-0.5 * ke:.4f}, cross-covariance "
            f"error {100 * r['cross_cov_error']:.1f}% (exact-sample floor {100 * gs['cross_cov_error_floor']:.1f}%)."
        )
    return notes


# ----------------------------------------------------------------------------------------
# plot
# ----------------------------------------------------------------------------------------
def _stem(record: dict) -> str:
    return NAME + ("_quick" if record.get("quick") else "")


def _evaluation(arrays: dict, record: dict, key: str):
    from bridge.sb.report import BridgeEvaluation

    p = f"{key}__"
    T = lambda k: torch.as_tensor(arrays[p + k])  # noqa: E731
    r = record["problems_2d"][key]
    return BridgeEvaluation(
        metrics={"marginals_by_t": {"energy_distance": r["marginals_by_t_energy_distance"]}},
        settings={}, errors={}, x0=T("x0"), x1=T("x1"), model_x1=T("model_x1"), reference_x1=T("reference_x1"),
        times=tuple(float(t) for t in arrays[p + "times"]), model_marginals=T("model_marginals"),
        reference_marginals=T("reference_marginals"),
    )  # fmt: skip


def _plot_coefficients(arrays, record, path):
    import matplotlib.pyplot as plt

    runs = [(k, record["problems_2d"][k]["label"] + f", eps = {EPS_2D:g}") for k in PROBLEMS_2D]
    runs += [(k, record["gaussian"]["runs"][k]["label"] + f", eps = {record['gaussian']['eps']:g}") for k in GAUSS_RUNS]
    t = arrays["t_grid"]
    fig = plt.figure(figsize=(13, 3.2 * len(runs)), layout="constrained")
    subs = fig.subfigures(len(runs), 1, hspace=0.04)
    ylabels = ("alpha(t) - (1 - t)", "beta(t) - t", "gamma(t) / gamma_0(t)")
    dim_styles = (dict(color=COLORS["bridge"], ls="-"), dict(color=COLORS["sf2m"], ls="-."))
    for sub, (key, label) in zip(subs, runs):
        before, after = arrays[f"{key}__curves_before"], arrays[f"{key}__curves_after"]
        axes = sub.subplots(1, 3)
        g0 = before[2]
        ratio = np.divide(after[2], g0, out=np.ones_like(g0), where=g0 > 1e-12)  # exactly 1 at the ends
        curves = (after[0] - before[0], after[1] - before[1], ratio)
        for c, ax in enumerate(axes):
            ax.axhline(1.0 if c == 2 else 0.0, color="k", ls="--", lw=1.2, label="at init: linear, gamma_0")
            for j in range(after.shape[2]):
                ax.plot(t, curves[c][:, j], lw=1.5, label=f"after max-min, dimension {j + 1}", **dim_styles[j % 2])
            fam = arrays.get(f"{key}__curves_family")
            if fam is not None:  # the exact minimiser of the family's kinetic energy (Gaussian only)
                fc = (
                    fam[0] - before[0],
                    fam[1] - before[1],
                    np.divide(fam[2], g0, out=np.ones_like(g0), where=g0 > 1e-12),
                )
                for j in range(fam.shape[2]):
                    ax.plot(t, fc[c][:, j], color="0.35", lw=1.0, ls=("-", "-.")[j % 2],
                            label=f"exact optimum of the family, dimension {j + 1}")  # fmt: skip
            ax.set_xlabel("t")
            ax.set_ylabel(ylabels[c])
            ax.grid(alpha=0.3)
        axes[2].legend(fontsize=7, loc="best")
        sub.suptitle(f"{label}   (max |change| of alpha, beta, gamma: {np.abs(after - before).max():.3g})", fontsize=10)
    fig.suptitle(
        "learned interpolant coefficients: change from the start (alpha = 1 - t, beta = t, "
        "gamma_0 = sqrt(2 eps t(1-t))) after the max-min",
        fontsize=11,
    )  # fmt: skip
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_fans(arrays, record, path):
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    fig = plt.figure(figsize=(11, 5.2 * len(PROBLEMS_2D)))
    for row, key in enumerate(PROBLEMS_2D):
        ax0 = fig.add_subplot(len(PROBLEMS_2D), 2, 2 * row + 1)
        axes_row = [ax0, fig.add_subplot(len(PROBLEMS_2D), 2, 2 * row + 2, sharex=ax0, sharey=ax0)]
        p = f"{key}__"
        x0, x1, xf = arrays[p + "x0"], arrays[p + "x1"], arrays[p + "fan_x0"]
        r = record["problems_2d"][key]
        cp = r["coupling"]
        panels = [
            ("learned bridge: SDE samples of x1 | x0", p + "fan_model", p + "fan_model_map", "mean of the samples"),
            (f"POT entropic plan (reg = 4 eps = {4 * EPS_2D:g}): pi(y | x0)", p + "fan_reference",
             p + "fan_reference_map", "barycentric map T(x0)"),
        ]  # fmt: skip
        for col, (title, k_s, k_m, mlabel) in enumerate(panels):
            ax = axes_row[col]
            ax.scatter(x0[:, 0], x0[:, 1], s=3, color=COLORS["source"], alpha=0.15, label="held-out source")
            ax.scatter(x1[:, 0], x1[:, 1], s=3, color=COLORS["target"], alpha=0.15, label="held-out target")
            ys, ms = arrays[k_s], arrays[k_m]
            for i in range(xf.shape[0]):
                col_i = plt.cm.tab10(i % 10)
                segs = np.stack([np.broadcast_to(xf[i], ys[i].shape), ys[i]], axis=1)
                ax.add_collection(LineCollection(segs, colors=[col_i], linewidths=0.4, alpha=0.5))
                ax.scatter(ys[i][:, 0], ys[i][:, 1], s=6, color=col_i)
                ax.scatter(*xf[i], s=60, marker="o", facecolor="white", edgecolor=col_i, lw=2, zorder=5)
                ax.scatter(*ms[i], s=120, marker="*", color=col_i, edgecolor="k", lw=0.6, zorder=6,
                           label=mlabel if i == 0 else None)  # fmt: skip
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("coordinate 1")
            ax.set_ylabel("coordinate 2")
            ax.set_aspect("equal", adjustable="box")
            ax.autoscale_view()
            if col == 0:
                fl = cp["reference_floor"] or {}
                ax.text(
                    0.01, 0.99,
                    f"{r['label']}, eps = {EPS_2D:g}\nbary-map L2-UVP {cp['barycentric_map_l2_uvp']:.2f}% "
                    f"(POT noise {fl.get('barycentric_map_l2_uvp', float('nan')):.2f}%)\n"
                    f"cross-cov error {100 * cp['cross_covariance_rel_error']:.1f}% "
                    f"(POT noise {100 * fl.get('cross_covariance_rel_error', float('nan')):.1f}%)",
                    transform=ax.transAxes, fontsize=8, va="top",
                    bbox=dict(boxstyle="round", facecolor="white", alpha=0.8),
                )  # fmt: skip
            ax.legend(fontsize=7, loc="lower right", markerscale=1.5)
    fig.suptitle("coupling from a few held-out x0 (circles): learned SDE vs POT's entropic plan", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_energy(arrays, record, path):
    import matplotlib.pyplot as plt

    gs = record["gaussian"]
    ke = gs["kinetic_closed_form"]
    fig, axes = plt.subplots(3, 2, figsize=(12, 13.5), squeeze=False)
    for row, run in enumerate(GAUSS_RUNS):
        p = f"{run}__history_"
        r = gs["runs"][run]
        step, obj, kin = arrays[p + "step"], arrays[p + "objective"], arrays[p + "kinetic"]
        win = max(3, step.size // 10)
        ax0, ax1 = axes[row]
        ax0.plot(step, obj, ".", color=COLORS["bridge"], alpha=0.3, ms=3, label="batch value")
        ax0.plot(step, running_mean(obj, win), color=COLORS["bridge"], lw=1.8, label=f"running mean ({win} logs)")
        ax0.axhline(
            -0.5 * ke, color=COLORS["reference"], ls="--", lw=1.5, label=f"saddle value -KE*/2 = {-0.5 * ke:.3f}"
        )
        ax0.set_ylabel("max-min objective (SI 3.39)")
        ax0.set_title(r["label"], fontsize=9)
        ax1.plot(step, kin, ".", color=COLORS["ode"], alpha=0.3, ms=3, label="int E|u|^2 dt, batch estimate")
        ax1.plot(step, running_mean(kin, win), color=COLORS["ode"], lw=1.8, label="running mean")
        ex = arrays[f"{run}__exact_kinetic"]
        what = "independent x0, x1" if run == "gauss_independent" else "SB plan coupling"
        ax1.plot(np.arange(ex.size), ex, color="k", lw=1.5, label=f"interpolant path, exact ({what})")
        ax1.axhline(ke, color=COLORS["reference"], ls="--", lw=1.5, label=f"closed form KE* = {ke:.3f}")
        fam = r.get("family_infimum_kinetic")
        if fam is not None:
            ax1.axhline(fam, color="k", ls=":", lw=1.2, label=f"infimum over the interpolant family: {fam:.3f}")
        kp, kr = r["path_kinetic_final"], r["path_kinetic_rel_error"]
        ax1.plot([step[-1]], [kp], "D", color=COLORS["sf2m"], ms=7, zorder=5,
                 label=f"final SDE paths: {kp:.3f} ({100 * kr:+.1f}%)")  # fmt: skip
        ax1.set_ylabel("kinetic energy int_0^1 E|u|^2 dt")
        ks, kf = r["exact_kinetic_start"], r["exact_kinetic_final"]
        ax1.set_title(f"eps = {gs['eps']:g}; exact interpolant-path KE {ks:.3f} -> {kf:.3f}", fontsize=9)
        lo = min(np.percentile(kin, 2), ke, ex.min()) - 0.05 * ke  # a few wild batch values stay off-scale
        hi = max(np.percentile(kin, 98), ex.max(), r["path_kinetic_final"]) + 0.05 * ke
        ax1.set_ylim(lo, hi)
        for ax in (ax0, ax1):
            ax.set_xlabel("outer step")
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    ax0, ax1 = axes[2]
    for i, key in enumerate(PROBLEMS_2D):
        p = f"{key}__history_"
        step, obj, kin = arrays[p + "step"], arrays[p + "objective"], arrays[p + "kinetic"]
        win = max(3, step.size // 10)
        color = ("C0", "C1")[i]
        ax0.plot(step, obj, ".", color=color, alpha=0.25, ms=3)
        ax0.plot(step, running_mean(obj, win), color=color, lw=1.8, label=LABELS_2D[key])
        ax1.plot(step, kin, ".", color=color, alpha=0.25, ms=3)
        ax1.plot(step, running_mean(kin, win), color=color, lw=1.8, label=LABELS_2D[key] + " (batch, running mean)")
        path_ke = record["problems_2d"][key]["kinetic"]["path"]
        if path_ke is not None:
            ax1.axhline(path_ke, color=color, ls=":", lw=1.2, label=f"along the final SDE's paths: {path_ke:.3f}")
    ax0.set_title(f"2-D problems, eps = {EPS_2D:g} (no closed form)", fontsize=9)
    ax1.set_title(f"2-D problems, eps = {EPS_2D:g} (no closed form)", fontsize=9)
    ax0.set_ylabel("max-min objective (SI 3.39)")
    ax1.set_ylabel("kinetic energy int_0^1 E|u|^2 dt")
    for ax in (ax0, ax1):
        ax.set_xlabel("outer step")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.suptitle("objective and kinetic energy against outer steps (Gaussian: closed form)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_walltime(arrays, record, path):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    wt = record["walltime"]
    res = wt["results"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    series = [
        ("bridge", "bridge (max-min, Sinkhorn coupling)", "o-", [f"{r['budget_s']:g}s" for r in res["bridge"]]),
        ("sf2m", "SF2M (own implementation)" if "own" in str(res.get("sf2m_implementation")) else "SF2M", "s-",
         [f"{r['budget_s']:g}s" for r in res["sf2m"]]),
        ("pot", "POT out of sample (Sinkhorn on n_train)", "^-", [f"n={r['n_train']}" for r in res["pot"]]),
    ]  # fmt: skip
    for key, label, style, notes in series:
        x, y = arrays[f"wall__{key}_train_s"], arrays[f"wall__{key}_cbw2"]
        ax.plot(x, y, style, color=COLORS[key], label=label, ms=7)
        for xi, yi, n in zip(x, y, notes):
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(n, (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7, color=COLORS[key])
    ax.axhline(wt["floor_cbw2_uvp"], color=COLORS["floor"], ls="--", label="floor: exact conditional samples")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("training wall time (s, one CPU thread; sampling excluded)")
    ax.set_ylabel("cBW2-UVP (%)")
    ax.set_title(f"{wt['problem']} (benchmarks/sb.py), eps = {wt['eps']:g}: conditional error against wall time",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(arrays, record, out_dir):
    from bridge.sb.report import plot_coupling, plot_marginals

    out = Path(out_dir)
    stem = _stem(record)
    paths = []
    p = out / f"{stem}_coefficients.png"
    _plot_coefficients(arrays, record, p)
    paths.append(p)
    for key in PROBLEMS_2D:
        ev = _evaluation(arrays, record, key)
        for kind, fn in (("coupling", plot_coupling), ("marginals", plot_marginals)):
            p = out / f"{stem}_{kind}_{key}.png"
            fn(ev, p, eps=EPS_2D)
            paths.append(p)
    for kind, fn in (("fans", _plot_fans), ("energy", _plot_energy), ("walltime", _plot_walltime)):
        p = out / f"{stem}_{kind}.png"
        fn(arrays, record, p)
        paths.append(p)
    return paths


if __name__ == "__main__":
    main_for(sys.modules[__name__])
