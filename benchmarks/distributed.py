r"""Benchmark: data-parallel training (:mod:`bridge.distributed`), one process against two.

Both arms train :func:`bridge.sb.solve_bridge` on the same mixture-benchmark problem
(``benchmarks/sb.py``'s problems, training data and test inputs) for the same number of outer
steps at the same **global batch** ``G``: one process with ``batch_size = G``, and two processes
(``torch.multiprocessing`` spawn, gloo on CPU, one torch thread each) with ``batch_size = G / 2``
each, which train the same objective (docs/math.md §5.13). Each arm runs
in fresh spawned processes (the same start-up for both); rank 0 scores the result. Neither arm
runs coupling-refinement rounds (``refine_rounds=0``): the measurement is the max–min loop.

What bounds the speed-up: each process computes its own half of the networks' work, but the
minibatch coupling's entropic plan between the ``G`` gathered points is solved on every process
(the same plan, so that two processes train one process's objective), and the per-step costs
that do not shrink with the batch (Python, optimiser steps, small kernels) stay per process.
``--coupling independent`` measures the loop without plans.

Reported per arm and seed:

* **outer steps per second** between the first and the last history record (the max–min loop
  only: no set-up, warm-up, coupling plans of ``"auto"`` or evaluation), and the whole
  training's ``steps / wall_s``;
* **outer steps per CPU-second** of rank 0 over the whole training (``time.process_time``, all
  its threads): what the speed-up would be if each process had a core of its own and waiting
  cost nothing, a proxy that a busy machine disturbs less than the wall clock;
* **cBW2-UVP** (%) of ``test_points x per_point`` SDE samples against the problem's exact
  conditional laws, as ``benchmarks/sb.py`` scores it, next to the floor of exact samples.

The table gives each arm's mean over the seeds and the speed-up of two processes (goal: at least
1.6x the outer steps per second of one, the same cBW2-UVP within the seeds' spread). Timings
depend on what else runs on the machine: ``load_before``/``load_after`` (the 1-minute load
average) are recorded.

    python benchmarks/distributed.py                       # ~3 min on two idle cores
    python benchmarks/distributed.py --problem mix16-r1 --steps 200 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import distributed as tdist

sys.path.insert(0, str(Path(__file__).parent))
import sb as bench  # noqa: E402  (the benchmark's problems and scoring)

from bridge.sb import SBConfig, solve_bridge  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problem", default="mix16-r1", help="a benchmarks/sb.py problem (default mix16-r1)")
    p.add_argument("--global-batch", type=int, default=256, help="rows per step over all processes (default 256)")
    p.add_argument("--steps", type=int, default=100, help="outer steps per run (default 100)")
    p.add_argument("--warmup-steps", type=int, default=20, help="inner steps before the first outer one")
    p.add_argument(
        "--coupling",
        default="auto",
        choices=("auto", "minibatch", "independent", "sinkhorn"),
        help="SBConfig.coupling (default auto); no refinement rounds in either arm",
    )
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    p.add_argument("--n-train", type=int, default=4000, help="training samples per side (default 4000)")
    p.add_argument("--test-points", type=int, default=200, help="test inputs for cBW2-UVP (default 200)")
    p.add_argument("--per-point", type=int, default=200, help="samples per test input (default 200)")
    p.add_argument("--sde-steps", type=int, default=100, help="SDE steps of the scoring samples (default 100)")
    p.add_argument("--trace-samples", type=int, default=100_000, help="samples for tr Cov(rho1)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "distributed.json"))
    args = p.parse_args(argv)
    if args.global_batch % 2:
        p.error(f"--global-batch: expected an even number (two processes share it), got {args.global_batch}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    return args


def _problem_args(args, seed: int) -> argparse.Namespace:
    """What :func:`bench.build_problem` and :func:`bench.evaluate` read."""
    return argparse.Namespace(
        seed=seed,
        n_train=args.n_train,
        test_points=args.test_points,
        per_point=args.per_point,
        cov_points=1000,
        gauss_eps=0.5,
        trace_samples=args.trace_samples,
        sde_steps=args.sde_steps,
    )


def _rank(rank: int, world: int, port: int, args, seed: int, out: str) -> None:
    """One process of an arm: train, and on rank 0 score and write the record."""
    torch.set_num_threads(1)
    if world > 1:
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
        tdist.init_process_group("gloo", rank=rank, world_size=world)
    pargs = _problem_args(args, seed)
    prob = bench.build_problem(args.problem, pargs)
    cfg = SBConfig(
        drift_family="network",  # data-parallel training of the networks
        outer_steps=args.steps,
        warmup_steps=args.warmup_steps,
        batch_size=args.global_batch // world,
        log_every=10,
        seed=seed,
        threads=1,
        coupling=args.coupling,
        refine_rounds=0,
    )
    cpu0 = time.process_time()
    res = solve_bridge(prob.x0_train, prob.x1_train, prob.eps, config=cfg, progress=lambda m: None)
    cpu_s = time.process_time() - cpu0
    if rank == 0:
        first, last = res.history[0], res.history[-1]
        rec = {
            "world_size": world,
            "batch_size_per_process": cfg.batch_size,
            "seed": seed,
            "outer_steps": res.steps,
            "wall_s": res.wall_s,
            "loop_steps_per_s": (last["step"] - first["step"]) / (last["wall_s"] - first["wall_s"]),
            "steps_per_s": res.steps / res.wall_s,
            "cpu_s": cpu_s,
            "steps_per_cpu_s": res.steps / cpu_s,
            "coupling": res.coupling.get("coupling"),
            "gradient_drift": res.config.gradient_drift,
            "minibatch_size": res.coupling.get("minibatch_size"),
        }
        g = torch.Generator().manual_seed(seed + 11)
        draw = lambda x, k, gen: res.sample(x, per_point=k, steps=args.sde_steps, generator=gen)  # noqa: E731
        rec |= bench.evaluate(prob, draw, pargs, g)
        Path(out).write_text(json.dumps(rec))
    if world > 1:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_arm(world: int, args, seed: int) -> dict:
    """``world`` fresh processes training together; rank 0's record."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rank0.json")
        mp.spawn(_rank, args=(world, _free_port(), args, seed, out), nprocs=world, join=True)
        return json.loads(Path(out).read_text())


def _mean(xs) -> float:
    return sum(xs) / len(xs)


def summarise(runs: list[dict]) -> dict:
    """Per arm: the seeds' mean and range of each number; the two-process speed-ups."""
    arms = {}
    for world in sorted({r["world_size"] for r in runs}):
        rs = [r for r in runs if r["world_size"] == world]
        arms[world] = {
            k: {"mean": _mean([r[k] for r in rs]), "min": min(r[k] for r in rs), "max": max(r[k] for r in rs)}
            for k in ("loop_steps_per_s", "steps_per_s", "steps_per_cpu_s", "cbw2_uvp")
        }
    one, two = arms.get(1), arms.get(2)
    speedup = None
    if one and two:
        speedup = {k: two[k]["mean"] / one[k]["mean"] for k in ("loop_steps_per_s", "steps_per_s", "steps_per_cpu_s")}
    return {"arms": arms, "speedup_two_over_one": speedup}


def table(summary: dict, floor: float, args) -> str:
    rows = [
        "| processes | batch per process | loop outer steps/s | whole training steps/s | steps per CPU-s of rank 0 "
        "| cBW2-UVP (%) [min, max] |",
        "|---|---|---|---|---|---|",
    ]
    for world, a in summary["arms"].items():
        c = a["cbw2_uvp"]
        rows.append(
            f"| {world} | {args.global_batch // world} | {a['loop_steps_per_s']['mean']:.2f} | "
            f"{a['steps_per_s']['mean']:.2f} | {a['steps_per_cpu_s']['mean']:.2f} | "
            f"{c['mean']:.3f} [{c['min']:.3f}, {c['max']:.3f}] |"
        )
    s = summary["speedup_two_over_one"]
    if s:
        rows.append(
            f"\nTwo processes / one: {s['loop_steps_per_s']:.2f}x loop outer steps/s, "
            f"{s['steps_per_s']:.2f}x whole-training steps/s, {s['steps_per_cpu_s']:.2f}x steps per CPU-second. "
            f"Floor (exact samples): {floor:.3f}%."
        )
    return "\n".join(rows)


def main(argv=None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    runs = []
    for seed in args.seeds:
        for world in (1, 2):
            rec = run_arm(world, args, seed)
            runs.append(rec)
            print(
                f"[distributed] seed {seed}, {world} process(es): {rec['loop_steps_per_s']:.2f} outer steps/s, "
                f"cBW2-UVP {rec['cbw2_uvp']:.3f}%",
                file=sys.stderr,
                flush=True,
            )
    first = _problem_args(args, args.seeds[0])  # the floor at the first seed's test inputs
    floor = bench.floor(bench.build_problem(args.problem, first), first)
    summary = summarise(runs)
    print(table(summary, floor["cbw2_uvp"], args))
    record = {
        "benchmark": "benchmarks/distributed.py",
        "arguments": {k: v for k, v in vars(args).items() if k != "out"},
        "command": "python benchmarks/distributed.py " + " ".join(sys.argv[1:]),
        "threads_per_process": 1,
        "backend": "gloo",
        "cpu_count": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "wall_s": time.perf_counter() - t0,
        "floor_cbw2_uvp": floor["cbw2_uvp"],
        "runs": runs,
        "summary": summary,
        "versions": bench.versions(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
