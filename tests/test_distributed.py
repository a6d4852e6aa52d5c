"""Data-parallel training (bridge.distributed): two CPU processes with gloo.

* the collectives, one process: no-ops; the backend chosen for each device;
* two ranks (``torch.multiprocessing.spawn``): the minibatch plan on the gathered batch is the
  plan of one process on the concatenated batch (bitwise) and POT's entropic plan there; the
  averaged gradient is autograd's gradient of the loss on the concatenated batch;
* ``solve_bridge`` on two ranks: identical weights on both, a run resumed from a mid-run
  checkpoint ends where the uninterrupted run ends (every rank's stream restored), and a time
  budget stops both ranks at the same step; ``train_fields`` keeps both ranks equal too;
* ``torchrun --nproc_per_node=2 -m bridge solve`` and ``fit``: exit 0, one set of outputs,
  ``world_size`` 2 recorded, progress lines once, and ``solve`` resumes.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
import torch.multiprocessing as mp
from torch import distributed as tdist

from bridge.checkpoint import load_checkpoint
from bridge.cli import main
from bridge.distributed import SINGLE, current, resolve_backend
from bridge.interpolants import Linear
from bridge.ot import minibatch_log_plan
from bridge.sb import SBConfig, solve_bridge
from bridge.sb.couplings import gathered_plan
from bridge.train import train_fields

EPS = 0.5
WORLD = 2
#: Rows per rank of the plan test.
ROWS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_batch(rank: int):
    g = torch.Generator().manual_seed(100 + rank)
    a = torch.randn(ROWS, 2, generator=g, dtype=torch.float64)
    return a, torch.randn(ROWS, 2, generator=g, dtype=torch.float64) * 0.7 + 1.0


def _linear() -> torch.nn.Linear:
    net = torch.nn.Linear(2, 3, dtype=torch.float64)
    with torch.no_grad():
        net.weight.copy_(torch.arange(6, dtype=torch.float64).view(3, 2) / 5 - 0.4)
        net.bias.copy_(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
    return net


def _plan_and_gradient(rank: int, out: Path) -> None:
    group = current()
    a, b = _rank_batch(rank)
    a_all, b_all, plan, mine = gathered_plan(a, b, EPS, 1e-10, None, group)
    net = _linear()
    (net(a) - b.sum(1, keepdim=True)).pow(2).sum(1).mean().backward()
    group.average_gradients(net.parameters())
    rec = {"a_all": a_all, "b_all": b_all, "log_plan": plan.log_plan, "mine": (mine.start, mine.stop)}
    rec |= {"grad_w": net.weight.grad, "grad_b": net.bias.grad, "group": group.record()}
    torch.save(rec, out / f"plan{rank}.pt")


def _solve(rank: int, out: Path, resume: bool) -> None:
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) * 0.5 + 2
    cfg = SBConfig(outer_steps=8, inner_steps=2, warmup_steps=2, batch_size=32, hidden=8, depth=1, log_every=1)
    cfg.coupling = "minibatch"
    ckpt = out / ("mid.pt" if resume else "state.pt")

    def progress(msg):  # at step 6's line, state.pt holds the state after step 5: keep a copy
        if not resume and re.search(r"outer\s+6/", msg):
            shutil.copy(ckpt, out / "mid.pt")

    res = solve_bridge(x0, x1, EPS, config=cfg, progress=progress, checkpoint=ckpt, checkpoint_every=0.0, resume=resume)
    nets = {"drift": res.drift_net.state_dict(), "interpolant": res.interpolant.state_dict(), "steps": res.steps}
    torch.save(nets, out / f"{'resumed' if resume else 'whole'}{rank}.pt")


def _solve_to_budget(rank: int, out: Path) -> None:
    """A time budget ends the run: rank 0's clock decides, every rank stops at the same step."""
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1
    cfg = SBConfig(outer_steps=10**6, time_budget=1.5, warmup_steps=2, batch_size=16, hidden=8, depth=1, log_every=0)
    res = solve_bridge(x0, x1, EPS, config=cfg, progress=lambda m: None)
    rec = {"steps": res.steps, "stopped_by": res.stopped_by, "drift": res.drift_net.state_dict()}
    torch.save(rec, out / f"budget{rank}.pt")


def _solve_mixture_with_kl_start(rank: int, out: Path) -> None:
    """The mixture family's KL start on two ranks, ended by rank 0's clock: gradients averaged,
    every rank leaves it at the same step with the same weights."""
    g = torch.Generator().manual_seed(6)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1
    cfg = SBConfig(drift_family="mixture", n_components=3, kl_share=0.5, outer_steps=10**6, time_budget=1.5,
                   warmup_steps=2, batch_size=16, log_every=0)  # fmt: skip
    res = solve_bridge(x0, x1, EPS, config=cfg, progress=lambda m: None)
    rec = {"steps": res.steps, "kl": res.coupling["kl_start"]["steps"], "drift": res.drift_net.state_dict()}
    torch.save(rec, out / f"kl{rank}.pt")


def _fit(rank: int, out: Path) -> None:
    """``train_fields`` on two ranks, its clock from rank 0 (a time budget that does not bind)."""
    g = torch.Generator().manual_seed(5)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1
    res = train_fields(Linear(), x0, x1, steps=12, time_budget=600.0, batch_size=16, hidden=8, depth=1, log_every=0)
    torch.save({f: m.state_dict() for f, m in res.models.items()} | {"steps": res.steps}, out / f"fit{rank}.pt")


def _worker(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of two: the plan and gradient, a solve, and the solve resumed from mid-run."""
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    tdist.init_process_group("gloo", rank=rank, world_size=WORLD)
    _plan_and_gradient(rank, Path(out))
    _solve(rank, Path(out), resume=False)
    _solve(rank, Path(out), resume=True)
    _solve_to_budget(rank, Path(out))
    _solve_mixture_with_kl_start(rank, Path(out))
    _fit(rank, Path(out))
    tdist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """What :func:`_worker` saved on two ranks spawned with gloo."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return out


def test_one_process_is_a_no_op():
    assert current() == SINGLE and SINGLE.is_main and not SINGLE.is_distributed
    x = torch.randn(3, 2)
    assert SINGLE.all_gather(x) is x and SINGLE.broadcast_values([1.5, 0.0]) == [1.5, 0.0]
    net = _linear()
    net(x.double()).sum().backward()
    before = net.weight.grad.clone()
    SINGLE.average_gradients(net.parameters())
    assert torch.equal(net.weight.grad, before)
    assert resolve_backend("cpu")[0] == "gloo"
    if tdist.is_nccl_available():
        assert resolve_backend("cuda")[0] == "nccl"
    else:  # a CPU build of torch: --device cuda under torchrun is refused in one line
        with pytest.raises(ValueError, match="NCCL"):
            resolve_backend("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_backend("tpu")


@pytest.mark.slow
def test_gathered_plan_and_gradients_are_those_of_the_concatenated_batch(two_ranks):
    r0, r1 = (torch.load(two_ranks / f"plan{r}.pt") for r in range(WORLD))
    assert r0["group"]["world_size"] == WORLD and r0["group"]["backend"] == "gloo"
    (a0, b0), (a1, b1) = _rank_batch(0), _rank_batch(1)
    a, b = torch.cat([a0, a1]), torch.cat([b0, b1])
    assert torch.equal(r0["a_all"], a) and torch.equal(r1["b_all"], b)  # rank order
    assert r0["mine"] == (0, ROWS) and r1["mine"] == (ROWS, 2 * ROWS)
    # every rank solved the same plan, bitwise the one-process plan on the concatenated batch ...
    assert torch.equal(r0["log_plan"], r1["log_plan"])
    assert torch.equal(r0["log_plan"], minibatch_log_plan(a, b, EPS, tol=1e-10, max_iter=300).log_plan)
    # ... which is POT's entropic plan there (reg = 4 eps on the squared distance)
    n = a.shape[0]
    w = np.full(n, 1.0 / n)
    pot = ot.sinkhorn(w, w, ot.dist(a.numpy(), b.numpy()), 4 * EPS, method="sinkhorn_log", stopThr=1e-13)
    np.testing.assert_allclose(r0["log_plan"].exp().numpy(), pot, atol=1e-9)
    # the averaged gradient is autograd's gradient of the mean loss over both ranks' rows
    net = _linear()
    (net(a) - b.sum(1, keepdim=True)).pow(2).sum(1).mean().backward()
    for r in (r0, r1):
        torch.testing.assert_close(r["grad_w"], net.weight.grad, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(r["grad_b"], net.bias.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_solve_bridge_on_two_ranks_keeps_them_equal_and_resumes_exactly(two_ranks):
    runs = {(k, r): torch.load(two_ranks / f"{k}{r}.pt") for k in ("whole", "resumed") for r in range(WORLD)}
    ref = runs["whole", 0]
    assert ref["steps"] == 8
    for key, run in runs.items():
        assert run["steps"] == 8, key
        for part in ("drift", "interpolant"):
            for name, v in ref[part].items():
                assert torch.equal(run[part][name], v), (key, part, name)
    # the resumed run started mid-run, from the copy taken after step 5 (and saved on over it)
    assert runs["whole", 0]["steps"] == 8 and load_checkpoint(two_ranks / "mid.pt")[1]["world_size"] == WORLD


@pytest.mark.slow
def test_a_time_budget_stops_every_rank_at_the_same_step(two_ranks):
    r0, r1 = (torch.load(two_ranks / f"budget{r}.pt") for r in range(WORLD))
    assert r0["stopped_by"] == r1["stopped_by"] == "time_budget"
    assert r0["steps"] == r1["steps"] > 0
    assert all(torch.equal(v, r1["drift"][k]) for k, v in r0["drift"].items())


@pytest.mark.slow
def test_the_mixture_familys_kl_start_keeps_the_ranks_equal(two_ranks):
    r0, r1 = (torch.load(two_ranks / f"kl{r}.pt") for r in range(WORLD))
    assert r0["kl"] == r1["kl"] > 0 and r0["steps"] == r1["steps"] > 0
    assert all(torch.equal(v, r1["drift"][k]) for k, v in r0["drift"].items())


@pytest.mark.slow
def test_train_fields_on_two_ranks_keeps_them_equal(two_ranks):
    r0, r1 = (torch.load(two_ranks / f"fit{r}.pt") for r in range(WORLD))
    assert r0["steps"] == r1["steps"] == 12 and set(r0) == {"b", "s", "steps"}
    for f in ("b", "s"):
        assert all(torch.equal(v, r1[f][k]) for k, v in r0[f].items()), f


def _torchrun(args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}"]
    return subprocess.run([*cmd, "-m", "bridge", *args], capture_output=True, text=True, env=env, timeout=timeout)


#: A tiny `bridge solve` (tests/cli/helpers.py's sizes, fewer evaluation points).
SOLVE = ["solve", "--source", "gaussian", "--target", "moons", "--eps", str(EPS), "--n-train", "300"]
SOLVE += ["--eval-points", "40", "--eval-per-point", "2", "--sde-steps", "4", "--batch-size", "32"]
SOLVE += ["--plan-size", "64", "--warmup-steps", "2", "--hidden", "8", "--depth", "1", "--log-every", "1"]
SOLVE_FILES = {"run.json", "state.pt", "bridge.pt", "report.json"}
SOLVE_FILES |= {"coupling.png", "marginals.png", "coefficients.png", "history.png"}


@pytest.mark.slow
def test_torchrun_solve_writes_one_run_and_resumes(tmp_path):
    out = tmp_path / "run"
    r = _torchrun([*SOLVE, "--out", str(out), "--steps", "3"])
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} == SOLVE_FILES  # one set of outputs, no lock or temporary left
    assert len(re.findall(r"outer\s+1/3", r.stderr)) == 1  # progress lines from rank 0 only
    rep = json.loads((out / "report.json").read_text())
    assert rep["distributed"]["world_size"] == WORLD and rep["distributed"]["backend"] == "gloo"
    assert rep["distributed"]["global_batch"] == WORLD * 32 and rep["training"]["outer_steps_done"] == 3
    r = _torchrun([*SOLVE, "--out", str(out), "--steps", "5"])
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    t = rep["training"]
    assert t["resumed"] and t["outer_steps_done"] == 5 and [h["step"] for h in t["history"]] == [1, 2, 3, 4, 5]
    assert "resumed from" in t["resume_log"] and "at outer step 3" in t["resume_log"]


@pytest.mark.slow
def test_torchrun_fit_writes_one_run(tmp_path):
    out = tmp_path / "fit"
    args = ["fit", "--out", str(out), "--steps", "20", "--n-train", "300", "--n-test", "100", "--sample-steps", "10"]
    r = _torchrun([*args, "--hidden", "8", "--depth", "1", "--batch-size", "32", "--eps", "1"])
    assert r.returncode == 0, r.stderr
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint.pt", "metrics.json", "samples.png"} <= names and not any(n.startswith(".") for n in names)
    m = json.loads((out / "metrics.json").read_text())
    assert m["distributed"]["world_size"] == WORLD and m["distributed"]["backend"] == "gloo"
    assert r.stderr.count("[fit] ODE") == 1  # rank 0 alone samples and prints


def test_commands_that_do_not_train_refuse_several_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["sample", "--run", str(tmp_path), "--source", "gaussian", "--n", "3", "--per-point", "2"]
    rc = main([*args, "--out", str(tmp_path / "y.npy")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "torchrun" in err, err
