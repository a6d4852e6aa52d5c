"""Sampling speed and time to accuracy of bridge's SDE sampler.

**Throughput** (points x steps / s) of :meth:`bridge.sb.BridgeResult.sample` (stochastic Heun on the
end-refined grid) against a bare ``torch.no_grad()`` Heun loop of the same network on the same grid
(the practical limit: two network calls per step and the arithmetic of the step, nothing else),
for a plain drift network and for a gradient drift (``u = grad_x V``, one autograd backward per
call; the bare loop does the same backward by hand), with and without ``compile=True``
(``torch.compile``, whose compile time is reported apart). SF2M's sampler (``torchsde.sdeint`` on the
SDE wrapper of torchcfm's examples, with methods ``"euler"`` and ``"srk"``, the latter what those
examples run) gives two more columns when ``torchsde`` is importable (``pip install -e ".[peers]"``),
at the same number of network calls as the bare loop; otherwise they are skipped with a note.

**Time to accuracy** on a mixture benchmark with a known bridge
(:func:`bridge.reference.make_mixture_benchmark`; its closed-form SB drift, so nothing is trained):
cBW2-UVP (``bridge.metrics.cbw2_uvp``) of ``rows x per_point`` SDE samples against the exact
conditional moments, and the wall time, for the old default (500 uniform steps), 100, 50 and 20
end-refined steps, and ``steps="auto"`` (the pilot's time included); the floor is what exact
conditional samples score, given as the mean and spread of three draws.

    python benchmarks/scale.py                         # about 6 minutes on one thread
    python benchmarks/scale.py --quick --out /tmp/scale.json   # seconds: small sizes, for the tests
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from bridge.metrics import cbw2_uvp
from bridge.reference import make_mixture_benchmark
from bridge.sb import BridgeResult, SBConfig, build_drift, build_interpolant
from bridge.sb.sde import forward_sde

OUT = Path(__file__).parent / "results" / "scale.json"


def bare_heun(net, x: torch.Tensor, eps: float, steps: int, gen: torch.Generator, grad: bool) -> torch.Tensor:
    """The practical limit: stochastic Heun on the end-refined grid ``t = 1 - (1 - s)^2``, written
    out with nothing but the network calls (the gradient drift's backward done here by hand)."""
    s = [k / steps for k in range(steps + 1)]
    ones = x.new_ones(x.shape[0])

    def f(si, y):
        tv = ones * (1.0 - (1.0 - si) ** 2)
        if not grad:
            return (2.0 * (1.0 - si)) * net(tv, y)
        with torch.enable_grad():
            yg = y.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(net.potential(tv, yg).sum(), yg)
        return (2.0 * (1.0 - si)) * g

    with torch.no_grad():
        for k in range(steps):
            a, h = s[k], s[k + 1] - s[k]
            dw = math.sqrt(2.0 * eps * 2.0 * (1.0 - (a + h / 2)) * h) * torch.randn(
                x.shape, generator=gen, dtype=x.dtype
            )
            k1 = f(a, x)
            k2 = f(a + h, x + h * k1 + dw)
            x = x + (0.5 * h) * (k1 + k2) + dw
    return x


# Drift evaluations per step of torchsde's fixed-step methods for diagonal Ito noise: Euler one; SRK
# (Roessler's SRID2 tableau, 4 stages) re-evaluates the earlier stages' drifts in each stage, 1+2+3+4 = 10.
# sdeint also calls the drift once before the first step, to check its shape (SDE_SHAPE_CHECK_CALLS).
# throughput_row counts the calls and checks these numbers.
SDE_CALLS_PER_STEP = {"euler": 1, "srk": 10}
SDE_SHAPE_CHECK_CALLS = 1


def peer_versions() -> dict:
    """Versions of the peers SF2M's sampler comes from (None where not importable)."""
    out = {}
    for name in ("torchsde", "torchcfm"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def torchsde_sample(net, x: torch.Tensor, eps: float, calls: int, method: str, seed: int = 0):
    """SF2M's sampler: ``torchsde.sdeint`` on the SDE wrapper of torchcfm's SF2M examples (diagonal
    Ito noise ``g = sqrt(2 eps)``, drift ``f(t, y) = net(t, y)``, which stands for SF2M's flow +
    score) with uniform steps on ``[0, 1]``, as many as make ``calls`` drift evaluations in all (the
    bare Heun loop's ``2 x steps``: the same work). None if torchsde is not importable.

    torchcfm's examples call ``sdeint(sde, x0, ts, solver="euler")``; sdeint ignores ``solver`` (it
    warns "Unexpected arguments") and runs its default for diagonal Ito noise, ``method="srk"``
    (``dt=1e-3``); both methods are columns. The Brownian motion is the ``BrownianInterval`` that
    sdeint would build, with its entropy fixed by ``seed``."""
    try:
        import torchsde
    except ImportError:
        return None

    class SDE(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return net(t.expand(y.shape[0]), y)

        def g(self, t, y):
            return torch.full_like(y, math.sqrt(2.0 * eps))

    steps = sde_steps(calls, method)
    # dt a hair above 1 / steps: sdeint adds steps of dt until it reaches t = 1, and the rounding of
    # that sum (float32 time) would otherwise add a tiny extra step; the last step is cut at t = 1
    dt = (1.0 + 1e-4) / steps
    levy = "space-time" if method == "srk" else "none"  # what sdeint picks for each method
    bm = torchsde.BrownianInterval(0.0, 1.0, size=x.shape, dtype=x.dtype, levy_area_approximation=levy, entropy=seed)
    with torch.no_grad():
        ts = torch.tensor([0.0, 1.0], dtype=x.dtype)
        return torchsde.sdeint(SDE(), x, ts, bm=bm, method=method, dt=dt)[-1]


def sde_steps(calls: int, method: str) -> int:
    """torchsde steps of ``method`` that make ``calls`` drift evaluations (at least one step)."""
    return max(1, calls // SDE_CALLS_PER_STEP[method])


class CallCounter(torch.nn.Module):
    """``net`` with a count of its calls (to check that two samplers do the same work)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, t, x):
        self.calls += 1
        return self.net(t, x)


def best_of(fns: dict, repeats: int) -> dict:
    """The least wall time of ``repeats`` calls of each function, taken in turns (the machine is
    shared: the least is the cleanest, and turns spread any load over all of them)."""
    times = {k: math.inf for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k] = min(times[k], time.perf_counter() - t0)
    return times


def throughput_row(args, grad: bool) -> dict:
    """Points x steps / s of each sampler for one drift kind, and bridge's time over the bare loop's."""
    cfg = SBConfig(drift_form="u", gradient_drift=grad)
    net = build_drift(cfg, args.d, torch.Generator().manual_seed(0)).eval()
    res = BridgeResult(drift_net=net, interpolant=build_interpolant(cfg, args.d, 0.5), eps=0.5, config=cfg)
    x = torch.randn(args.paths, args.d, generator=torch.Generator().manual_seed(1))
    gen = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    fns = {
        "bare": lambda: bare_heun(net, x, 0.5, args.steps, gen(), grad),
        "bridge": lambda: res.sample(x, steps=args.steps, generator=gen()),
    }
    compile_s = None
    if args.compile:
        t0 = time.perf_counter()
        res.sample(x[:7], steps=2, compile=True)  # compile (dynamic shapes) before timing
        compile_s = time.perf_counter() - t0
        fns["compiled"] = lambda: res.sample(x, steps=args.steps, generator=gen(), compile=True)
    calls = {"bare": 2 * args.steps}  # network calls per path: two per Heun step
    for method, per_step in SDE_CALLS_PER_STEP.items():
        counted = CallCounter(net)
        if torchsde_sample(counted, x[:2], 0.5, calls["bare"], method) is None:
            break
        calls[f"torchsde_{method}"] = per_step * sde_steps(calls["bare"], method)  # the shape check is overhead
        assert counted.calls == calls[f"torchsde_{method}"] + SDE_SHAPE_CHECK_CALLS, (method, counted.calls)
        fns[f"torchsde_{method}"] = lambda m=method: torchsde_sample(net, x, 0.5, calls["bare"], m)
    t = best_of(fns, args.repeats)
    # Heun steps' worth of work per second: points x (network calls / 2) / s
    rate = {k: args.paths * calls.get(k, calls["bare"]) / 2 / v for k, v in t.items()}
    return {
        "drift": "gradient (grad_x V)" if grad else "plain",
        "bare_steps_per_s": rate["bare"],
        "bridge_steps_per_s": rate["bridge"],
        "bridge_over_bare_time": t["bridge"] / t["bare"],
        "compiled_steps_per_s": rate.get("compiled"),
        "compile_s": compile_s,
        "torchsde_euler_steps_per_s": rate.get("torchsde_euler"),
        # time per network call over the bare loop's (equal calls at the default sizes: time over time)
        "torchsde_euler_over_bare_time": rate["bare"] / rate["torchsde_euler"] if "torchsde_euler" in t else None,
        "torchsde_srk_steps_per_s": rate.get("torchsde_srk"),
        "torchsde_srk_over_bare_time": rate["bare"] / rate["torchsde_srk"] if "torchsde_srk" in t else None,
        "network_calls": calls,
    }


def gradient_rows(args) -> dict:
    """Milliseconds per call of the gradient drift ``grad_x V`` on ``paths`` points, by way of
    computing it: :class:`bridge.models.GradientField` under ``no_grad`` (``torch.autograd.grad``
    without a graph, what sampling runs), the same with the parameters detached
    (``torch.func.functional_call``), with ``create_graph=True`` (what training needs),
    ``torch.func.grad``, and ``torch.func.grad`` compiled; and ``V``'s forward pass alone."""
    from torch.func import functional_call
    from torch.func import grad as func_grad

    cfg = SBConfig(drift_form="u", gradient_drift=True)
    field = build_drift(cfg, args.d, torch.Generator().manual_seed(0)).eval()
    V = field.potential
    x = torch.randn(args.paths, args.d, generator=torch.Generator().manual_seed(1))
    t = torch.full((args.paths,), 0.3)
    params = {k: p.detach() for k, p in V.named_parameters()}
    xr = x.clone().requires_grad_(True)  # a leaf that records gradients, as in training

    def detached():
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            return torch.autograd.grad(functional_call(V, params, (t, xg)).sum(), xg)[0]

    by_func = lambda: func_grad(lambda y: V(t, y).sum())(x)  # noqa: E731
    fns = {
        "autograd.grad, no graph (sampling)": lambda: field(t, x),
        "autograd.grad, detached parameters": detached,
        "autograd.grad, create_graph (training)": lambda: torch.enable_grad()(field)(t, xr),
        "torch.func.grad": by_func,
        "forward of V alone": lambda: V(t, x),
    }
    if args.compile:
        compiled = torch.compile(lambda: func_grad(lambda y: V(t, y).sum())(x))
        with torch.no_grad():
            compiled()
        fns["torch.func.grad, compiled"] = compiled
    with torch.no_grad():
        times = best_of(fns, 5 * args.repeats)
    return {k: 1e3 * v for k, v in times.items()}


def accuracy_rows(args, r: float) -> dict:
    """cBW2-UVP and wall time of each step choice on the mixture benchmark with reference variance
    ``r``, and the floor of exact samples."""
    bench = make_mixture_benchmark(args.d, r=r, generator=torch.Generator().manual_seed(0))
    eps, g = r / 2, torch.Generator().manual_seed(1)
    x0 = bench.sample_source(args.rows, generator=g)
    m, S = bench.conditional_mean(x0), bench.conditional_cov(x0)
    tr = float(torch.diagonal(bench.target_moments(20000, generator=g)[1]).sum())
    floors = [cbw2_uvp(bench.sample_conditional(x0, args.per_point, generator=g), m, S, tr) for _ in range(3)]
    cfg = SBConfig(drift_form="u")
    # the closed-form SB drift stands in for a learned one
    res = BridgeResult(drift_net=bench.drift, interpolant=build_interpolant(cfg, args.d, eps), eps=eps, config=cfg)
    x = x0.repeat_interleave(args.per_point, dim=0)
    rows = []
    for label, steps, grid in args.choices:
        gen = torch.Generator().manual_seed(2)
        t0 = time.perf_counter()
        choice = None
        if steps == "auto":
            choice = res.choose_steps(x0, generator=gen, grid=grid)
            steps = choice.steps
        y = forward_sde(res.drift, eps, x, steps=steps, grid=grid, generator=gen).x
        wall = time.perf_counter() - t0
        uvp = cbw2_uvp(y.reshape(args.rows, args.per_point, args.d), m, S, tr)
        rows.append({"choice": label, "steps": steps, "grid": grid, "wall_s": wall, "cbw2_uvp": uvp})
        if choice is not None:
            rows[-1]["auto"] = choice.as_dict()
    mean = sum(floors) / len(floors)
    spread = (sum((f - mean) ** 2 for f in floors) / (len(floors) - 1)) ** 0.5
    return {"r": r, "rows": rows, "floor_mean": mean, "floor_sd": spread, "floors": floors}


def print_tables(record: dict) -> None:
    a = record["args"]
    size = f"{a['paths']} paths x {a['steps']} Heun steps"
    print(f"throughput: d={a['d']}, {size}, points x steps / s (best of {a['repeats']}); ratio: time over bare loop's")
    heads = ("bare loop", "bridge", "ratio", "compiled", "compile s", "sde euler", "ratio", "sde srk", "ratio")
    keys = (
        ("compiled_steps_per_s", ".3g"),
        ("compile_s", ".1f"),
        ("torchsde_euler_steps_per_s", ".3g"),
        ("torchsde_euler_over_bare_time", ".2f"),
        ("torchsde_srk_steps_per_s", ".3g"),
        ("torchsde_srk_over_bare_time", ".2f"),
    )
    print(f"{'drift':20s} " + " ".join(f"{h:>9s}" for h in heads))
    for r in record["throughput"]:
        rest = " ".join(f"{'-' if r[k] is None else format(r[k], f):>9s}" for k, f in keys)
        print(
            f"{r['drift']:20s} {r['bare_steps_per_s']:9.3g} {r['bridge_steps_per_s']:9.3g} "
            f"{r['bridge_over_bare_time']:9.2f} {rest}"
        )
    if record["throughput"] and record["throughput"][0]["torchsde_euler_steps_per_s"] is None:
        print("(torchsde, SF2M's sampler, is not importable here: its columns skipped)")
    else:
        print(f"(torchsde {record['peers']['torchsde']}: euler and srk at the bare loop's network calls per path)")
    print(f"\ngradient drift grad_x V, {a['paths']} points, ms per call (best of {5 * a['repeats']}):")
    for k, v in record["gradient_ms"].items():
        print(f"  {k:40s} {v:8.2f}")
    for f in record["accuracy"]:
        print(f"\ntime to accuracy: mixture benchmark d={a['d']}, r={f['r']}, {a['rows']} x {a['per_point']} samples")
        print(f"exact samples' floor {f['floor_mean']:.3f} +- {f['floor_sd']:.3f} % (3 draws)")
        print(f"{'steps':18s} {'N':>5s} {'wall s':>8s} {'cBW2-UVP %':>10s}")
        for r in f["rows"]:
            print(f"{r['choice']:18s} {r['steps']:5d} {r['wall_s']:8.2f} {r['cbw2_uvp']:10.3f}")


CHOICES = [
    ("500 uniform (old)", 500, "uniform"),
    ("100 end-refined", 100, "end"),
    ("50 end-refined", 50, "end"),
    ("20 end-refined", 20, "end"),
    ("auto", "auto", "end"),
]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--r", default="1,0.1", help="mixture benchmarks' reference variances 2 eps, comma-separated")
    p.add_argument("--paths", type=int, default=10000, help="paths of the throughput runs")
    p.add_argument("--steps", type=int, default=50, help="steps of the throughput runs")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, default=100, help="test inputs of the accuracy runs")
    p.add_argument("--per-point", type=int, default=200, help="samples per test input")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the compile=True column")
    p.add_argument("--quick", action="store_true", help="tiny sizes, no compile (a smoke test)")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.choices = CHOICES
    if args.quick:
        args.d, args.paths, args.steps, args.repeats, args.rows, args.per_point = 2, 64, 4, 1, 8, 8
        args.compile = False
        args.choices = [("8 end-refined", 8, "end"), ("auto", "auto", "end")]
    record = {"args": {k: v for k, v in vars(args).items() if k != "choices"}}
    record["throughput"] = [throughput_row(args, grad) for grad in (False, True)]
    record["gradient_ms"] = gradient_rows(args)
    record["accuracy"] = [accuracy_rows(args, float(r)) for r in args.r.split(",")]
    record.update(torch=torch.__version__, python=platform.python_version(), peers=peer_versions())
    print_tables(record)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
