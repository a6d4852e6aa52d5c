r"""Benchmark: when does the corrected potential :math:`v = v_{\mathrm{mix}} e^f` beat the mixture alone?

(docs/math.md §5.14; :func:`bridge.sb.fit_corrected` against :func:`bridge.sb.fit_lightsb`.)

Problems (``--problems``, comma-separated):

* ``checkerboard-eps{e}``: ``gaussian -> checkerboard`` (``bridge.data``), eps ``e``;
* ``moons-eps{e}``: ``8gaussians -> moons``, eps ``e``;
  scored by the squared energy distance (``bridge.metrics.energy_distance``) between one draw of
  :math:`x_1 \mid x_0` for each of ``--test-points`` held-out source points and as many held-out
  target samples; the floor is the same number between two independent target sets of that size.
  Also the held-out objective :math:`\hat L = \frac1N\sum\widehat{\log c}(x_0) - \frac1N\sum\log v(x_1)`
  (KL to the SB plus a constant of the problem, so differences between methods are differences
  of :math:`\mathrm{KL}(\pi^\star\|\pi_v)`); for the corrected potentials bracketed by two
  estimates of :math:`\log c` with ``--kl-draws`` draws per row: the stratified log-mean (biased
  low) and the bound at an independent log-mean (biased high, :func:`heldout_objective`);
* ``mix{d}-r{r}``: the mixture benchmark of ``benchmarks/sb.py`` (``build_problem``, its test
  inputs and floor), where the SB potential *is* a mixture: cBW2-UVP (%) as ``benchmarks/sb.py``
  scores it.

Methods: ``mix-K`` (:func:`fit_lightsb` with ``K`` components for each ``K`` in ``--components``,
its defaults otherwise, at most ``--budget`` seconds); ``corr-K-frozen`` and ``corr-K-joint``
(:func:`fit_corrected` started from the ``mix-K`` fit, the correction trained for ``--budget``
seconds with the mixture frozen, or jointly at ``mixture_lr = --mixture-lr``), for each ``K`` in
``--corrected-components``; ``--modes`` adds ``corr-K-logmean`` (frozen, trained on the log of
the stratified mean instead of the bound: ``estimator="log_mean"``). Samples of the corrected
potentials use ``--proposals`` SIR proposals per draw; the mean effective sample size of those
proposals is reported (ESS / M).

Usage::

    python benchmarks/corrected.py --problems checkerboard-eps0.1     # ~4 min on one thread
    python benchmarks/corrected.py --problems mix16-r1 --components 50 --corrected-components 50

Prints a markdown table and writes JSON (``benchmarks/results/corrected_<problem>.json`` per
problem, ``corrected_<problem>_<tag>.json`` with ``--tag``); progress lines go to stderr. One
torch thread (``--threads``).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import torch

from bridge import __version__
from bridge.data import checkerboard, eight_gaussians, gaussian, moons
from bridge.metrics import energy_distance
from bridge.sb import corrected_loss, fit_corrected, fit_lightsb, lightsb_loss

sys.path.insert(0, str(Path(__file__).parent))
import sb as sb_bench  # noqa: E402  (the mixture benchmark's problems and scoring)

PAIRS = {"checkerboard": (gaussian, checkerboard), "moons": (eight_gaussians, moons)}
RESULTS = Path(__file__).parent / "results"
#: The corrected fits: mode -> (mixture_lr, None for --mixture-lr; estimator of log c).
MODES = {"frozen": (0.0, "bound"), "joint": (None, "bound"), "logmean": (0.0, "log_mean")}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_problem(name: str) -> dict:
    m = re.fullmatch(r"(checkerboard|moons)-eps([0-9.]+)", name)
    if m and float(m.group(2)) > 0:
        return {"kind": "2d", "pair": m.group(1), "eps": float(m.group(2))}
    if re.fullmatch(r"mix\d+-r[0-9.]+", name):
        return {"kind": "mix"} | sb_bench.parse_problem(name)
    raise ValueError(f"--problems: expected checkerboard-eps0.1, moons-eps0.5 or mix16-r1 style names, got {name!r}")


def build_2d(spec: dict, args) -> dict:
    """Training sets, held-out source points and two held-out target sets (fixed by the seed)."""
    src, tgt = PAIRS[spec["pair"]]
    g = torch.Generator().manual_seed(args.seed)
    n, m = args.n_train, args.test_points
    return {
        "eps": spec["eps"],
        "x0": src(n, generator=g),
        "x1": tgt(n, generator=g),
        "x0_test": src(m, generator=g),
        "x1_test": tgt(m, generator=g),
        "x1_test2": tgt(m, generator=g),
        "x0_kl": src(args.kl_points, generator=g),
        "x1_kl": tgt(args.kl_points, generator=g),
    }


def heldout_objective(method, data: dict, args, g) -> tuple[float, float]:
    r""":math:`\hat L` on the held-out points, from below and from above: exact (twice) for a mixture;
    for a corrected potential the stratified log-mean (biased low) and the bound of
    :meth:`~bridge.sb.CorrectedPotential.log_c_bound` at ``a`` = a log-mean from independent draws
    (an unbiased estimate of an upper bound, tight to second order), ``--kl-draws`` per row each."""
    with torch.no_grad():
        x0, x1 = data["x0_kl"], data["x1_kl"]
        if method["kind"] == "mixture":
            value = float(lightsb_loss(method["fit"].potential, x0, x1))
            return value, value
        pot = method["fit"].potential
        low = float(corrected_loss(pot, x0, x1, args.kl_draws, generator=g))
        a = pot.log_mean_exp_f(x0, args.kl_draws, generator=g)
        up = float(pot.log_c_bound(x0, a, args.kl_draws, generator=g).mean() - pot.log_v(x1).mean())
        return low, up


def draw_fn(method, args):
    fit = method["fit"]
    if method["kind"] == "mixture":
        return lambda x, k, gen: fit.sample(x, k, generator=gen)
    return lambda x, k, gen: fit.sample(x, k, proposals=args.proposals, generator=gen)


def fit_methods(x0, x1, eps, args):
    """Yield ``(key, method)``: each mixture, then its corrected fits (frozen and joint)."""
    for K in args.components:
        g = torch.Generator().manual_seed(args.seed + 100 + K)
        t0 = time.perf_counter()
        mix = fit_lightsb(x0, x1, eps, n_components=K, time_budget=args.budget, generator=g, progress=say)
        yield f"mix-{K}", {"kind": "mixture", "fit": mix, "train_s": time.perf_counter() - t0, "steps": mix.steps}
        if K not in args.corrected_components:
            continue
        for mode in args.modes:
            mlr, estimator = MODES[mode]
            t0 = time.perf_counter()
            res = fit_corrected(
                x0, x1, eps, mixture=mix, steps=None, time_budget=args.budget,
                mixture_lr=args.mixture_lr if mlr is None else mlr, estimator=estimator, lr=args.lr,
                hidden=args.hidden, batch_size=args.batch_size,
                proposals=args.proposals, generator=g, progress=say,
            )  # fmt: skip
            out = {"kind": "corrected", "fit": res, "train_s": time.perf_counter() - t0, "steps": res.steps}
            out["settings"] = {k: v for k, v in res.settings.items()}
            yield f"corr-{K}-{mode}", out


def ess_fraction(method, x: torch.Tensor, args, g) -> float | None:
    if method["kind"] != "corrected":
        return None
    ess = method["fit"].effective_sample_size(x, generator=g)
    return float(ess.mean()) / args.proposals


def score_2d(key, method, data, args) -> dict:
    g = torch.Generator().manual_seed(args.seed + 7)
    t0 = time.perf_counter()
    y = draw_fn(method, args)(data["x0_test"], 1, g)[:, 0]
    out = {"sample_s": time.perf_counter() - t0, "energy": energy_distance(y, data["x1_test"])}
    out["heldout_objective"], out["heldout_objective_upper"] = heldout_objective(method, data, args, g)
    out["ess_fraction"] = ess_fraction(method, data["x0_test"][:1000], args, g)
    return out


def run_2d(name: str, spec: dict, args) -> dict:
    data = build_2d(spec, args)
    rec = {"name": name, "kind": "2d", "eps": spec["eps"], "metric": "energy distance (squared)"}
    rec["floor"] = energy_distance(data["x1_test"], data["x1_test2"])
    rec["methods"] = {}
    for key, method in fit_methods(data["x0"], data["x1"], spec["eps"], args):
        res = {k: v for k, v in method.items() if k not in ("fit", "kind")} | score_2d(key, method, data, args)
        rec["methods"][key] = res
        L = f"{res['heldout_objective']:.4f} .. {res['heldout_objective_upper']:.4f}"
        say(f"[{name}] {key}: energy {res['energy']:.5f}  L {L}  ({res['train_s']:.0f} s)")
    return rec


def run_mix(name: str, args) -> dict:
    ns = argparse.Namespace(
        seed=args.seed, n_train=args.n_train, test_points=args.mix_test_points, per_point=args.mix_per_point,
        trace_samples=100_000, cov_points=1,
    )  # fmt: skip
    prob = sb_bench.build_problem(name, ns)
    rec = {"name": name, "kind": "mix", "eps": prob.eps, "metric": "cBW2-UVP (%)"}
    rec["floor"] = sb_bench.floor(prob, ns)["cbw2_uvp"]
    rec["methods"] = {}
    for key, method in fit_methods(prob.x0_train, prob.x1_train, prob.eps, args):
        g = torch.Generator().manual_seed(args.seed + 19)
        score = sb_bench.evaluate(prob, draw_fn(method, args), ns, g)
        res = {k: v for k, v in method.items() if k not in ("fit", "kind")}
        res |= {"sample_s": score["sample_s"], "cbw2_uvp": score["cbw2_uvp"]}
        res["ess_fraction"] = ess_fraction(method, prob.x_test.to(prob.x0_train.dtype), args, g)
        rec["methods"][key] = res
        say(f"[{name}] {key}: cBW2-UVP {res['cbw2_uvp']:.3f}%  ({res['train_s']:.0f} s)")
    return rec


def _relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (records stay machine-independent)."""
    root = Path(__file__).resolve().parents[1]
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def table(records: list[dict]) -> str:
    lines = [
        "| problem | metric | floor | method | score | held-out L (low .. up) | ESS / M | fit s | steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        metric = "energy" if rec["kind"] == "2d" else "cbw2_uvp"
        for key, res in rec["methods"].items():
            L = res.get("heldout_objective")
            L = None if L is None else f"{L:.4f} .. {res['heldout_objective_upper']:.4f}"
            ess = res.get("ess_fraction")
            lines.append(
                f"| {rec['name']} | {rec['metric']} | {rec['floor']:.4g} | {key} | {res[metric]:.4g} "
                f"| {L or ''} | {'' if ess is None else f'{ess:.2f}'} "
                f"| {res['train_s']:.0f} | {res['steps']} |"
            )
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--problems", default="checkerboard-eps0.1", help="comma-separated")
    p.add_argument("--components", default="8,50", help="K of the mixtures (comma-separated)")
    p.add_argument("--corrected-components", default="8", help="K of the mixtures that get corrected")
    p.add_argument("--modes", default="frozen,joint", help=f"corrected fits, a subset of {','.join(MODES)}")
    p.add_argument("--budget", type=float, default=60.0, help="seconds per fit (mixture; correction)")
    p.add_argument("--lr", type=float, default=1e-3, help="the correction's learning rate (fit_corrected's lr)")
    p.add_argument("--hidden", type=int, default=64, help="the correction's width")
    p.add_argument("--batch-size", type=int, default=256, help="rows per side per step of the correction")
    p.add_argument("--mixture-lr", type=float, default=1e-3, help="the mixture's rate in the joint corrected fit")
    p.add_argument("--proposals", type=int, default=64, help="SIR proposals per draw")
    p.add_argument("--n-train", type=int, default=10_000, help="training samples per side")
    p.add_argument("--test-points", type=int, default=4000, help="2-D problems: held-out points per set")
    p.add_argument("--kl-points", type=int, default=2000, help="2-D problems: held-out points for L")
    p.add_argument("--kl-draws", type=int, default=4096, help="draws per row in the corrected log c of L")
    p.add_argument("--mix-test-points", type=int, default=500, help="mixture problems: test inputs")
    p.add_argument("--mix-per-point", type=int, default=500, help="mixture problems: samples per input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: leave as is)")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--tag", default="", help="written to corrected_<problem>_<tag>.json (default: no suffix)")
    args = p.parse_args(argv)
    args.problems = [s.strip() for s in args.problems.split(",") if s.strip()]
    for name in args.problems:
        parse_problem(name)
    args.modes = [s.strip() for s in args.modes.split(",") if s.strip()]
    if any(m not in MODES for m in args.modes):
        p.error(f"--modes: expected a subset of {','.join(MODES)}, got {args.modes}")
    args.components = [int(k) for k in args.components.split(",")]
    args.corrected_components = [int(k) for k in args.corrected_components.split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for name in args.problems:
        t0 = time.perf_counter()
        spec = parse_problem(name)
        rec = run_2d(name, spec, args) if spec["kind"] == "2d" else run_mix(name, args)
        rec["wall_s"] = time.perf_counter() - t0
        rec["config"] = vars(args) | {"command": "python benchmarks/corrected.py " + " ".join(sys.argv[1:])}
        rec["config"]["out_dir"] = _relative(out_dir)
        rec["versions"] = {"bridge": __version__, "torch": torch.__version__, "python": platform.python_version()}
        path = out_dir / (f"corrected_{name}_{args.tag}.json" if args.tag else f"corrected_{name}.json")
        path.write_text(json.dumps(rec, indent=2, default=str))
        records.append(rec)
        say(f"wrote {path}")
    print(table(records))


if __name__ == "__main__":
    main()
