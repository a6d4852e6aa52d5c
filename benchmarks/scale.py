"""Sampling speed and time to accuracy of bridge's SDE sampler.

**Throughput** (points x steps / s) of :meth:`bridge.sb.BridgeResult.sample` (stochastic Heun on the
end-refined grid) against a bare ``torch.no_grad()`` Heun loop of the same network on the same grid
(the practical limit: two network calls per step and the arithmetic of the step, nothing else),
for a plain drift network and for a gradient drift (``u = grad_x V``, one autograd backward per
call; the bare loop does the same backward by hand), with and without ``compile=True``
(``torch.compile``, whose compile time is reported apart). SF2M's sampler (``torchsde.sdeint``,
Euler) is a third column when ``torchsde`` is importable; otherwise the column is skipped with a note.

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


def torchsde_euler(net, x: torch.Tensor, eps: float, steps: int):
    """SF2M's sampler: ``torchsde.sdeint`` (Euler, uniform steps in t), or None if not importable."""
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

    with torch.no_grad():
        ts = torch.tensor([0.0, 1.0], dtype=x.dtype)
        return torchsde.sdeint(SDE(), x, ts, method="euler", dt=1.0 / steps)[-1]


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
    if torchsde_euler(net, x[:2], 0.5, 2) is not None:
        fns["torchsde"] = lambda: torchsde_euler(net, x, 0.5, args.steps)
    t = best_of(fns, args.repeats)
    rate = {k: args.paths * args.steps / v for k, v in t.items()}
    return {
        "drift": "gradient (grad_x V)" if grad else "plain",
        "bare_steps_per_s": rate["bare"],
        "bridge_steps_per_s": rate["bridge"],
        "bridge_over_bare_time": t["bridge"] / t["bare"],
        "compiled_steps_per_s": rate.get("compiled"),
        "compile_s": compile_s,
        "torchsde_steps_per_s": rate.get("torchsde"),
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
    print(f"throughput: d={a['d']}, {size}, points x steps / s (best of {a['repeats']})")
    heads = ("bare loop", "bridge", "ratio", "compiled", "compile s", "torchsde")
    print(f"{'drift':22s} " + " ".join(f"{h:>10s}" for h in heads))
    for r in record["throughput"]:
        sde, comp, cs = (
            "-" if r[k] is None else f"{r[k]:{f}}"
            for k, f in (("torchsde_steps_per_s", ".3g"), ("compiled_steps_per_s", ".3g"), ("compile_s", ".1f"))
        )
        print(
            f"{r['drift']:22s} {r['bare_steps_per_s']:10.3g} {r['bridge_steps_per_s']:10.3g} "
            f"{r['bridge_over_bare_time']:10.2f} {comp:>10s} {cs:>10s} {sde:>10s}"
        )
    if record["throughput"] and record["throughput"][0]["torchsde_steps_per_s"] is None:
        print("(torchsde, SF2M's sampler, is not importable here: column skipped)")
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
    record.update(torch=torch.__version__, python=platform.python_version())
    print_tables(record)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
