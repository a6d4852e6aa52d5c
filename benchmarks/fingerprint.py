"""Fingerprints of small solve_bridge runs, to show that a change of the code changes no result.

Nine configurations (every coupling, "auto" resolving both ways, refinement, holdout, the neural
interpolant, the endpoint and two-network forms with and without a gradient drift or weight
averaging), an interrupted-and-resumed run and a save/load round trip; for each it prints the sums
of the returned drift's and interpolant's parameters and of 50 x 1 samples. Run it before and after
a change (``python benchmarks/fingerprint.py > before.json``) and ``diff`` the outputs: identical
sums mean identical draws and weights. About 5 s on one thread."""

import json
import os
import sys
import tempfile

import torch

from bridge.sb import BridgeResult, SBConfig, solve_bridge

torch.set_num_threads(1)


def data(seed, n=600, d=3, shift=2.0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5 + shift
    return x0, x1


def fp(res, x0):
    ps = sum(float(p.double().sum()) for p in res.drift_net.state_dict().values())
    pi = sum(float(p.double().sum()) for p in res.interpolant.state_dict().values())
    g = torch.Generator().manual_seed(5)
    s = res.sample(x0[:50], generator=g, steps=20) if True else None
    s = s if isinstance(s, torch.Tensor) else getattr(s, "x1", s)
    return {
        "drift": ps,
        "interp": pi,
        "sample": float(torch.as_tensor(s).double().sum()),
        "steps": res.steps,
        "coupling": res.coupling.get("coupling"),
        "cfg_grad": res.config.gradient_drift,
    }


base = dict(
    drift_family="network",  # the network family's results, unchanged since before the families
    outer_steps=12,
    inner_steps=2,
    warmup_steps=5,
    batch_size=64,
    hidden=16,
    depth=2,
    log_every=0,
    val_every=4,
    val_size=128,
    refine_pairs=500,
    refine_sde_steps=5,
    plan_size=256,
    plan_count=2,
)
cases = {
    "auto_minibatch": dict(),  # wide data: rows spread -> minibatch
    "auto_independent_small_eps": dict(_eps=0.002),
    "sinkhorn": dict(coupling="sinkhorn"),
    "independent_refine2": dict(coupling="independent", refine_rounds=2),
    "paired_holdout": dict(coupling="paired", holdout=0.2),
    "indep_holdout_refine": dict(coupling="independent", holdout=0.2, refine_rounds=1),
    "neural_u": dict(interpolant="neural", drift_form="u", coupling="independent", refine_rounds=0),
    "endpoint_grad": dict(drift_form="endpoint", gradient_drift=True, coupling="minibatch"),
    "beta_noema": dict(drift_form="b,eta", ema=None, coupling="sinkhorn"),
}


def main() -> None:
    out = {}
    for name, kw in cases.items():
        kw = dict(kw)
        eps = kw.pop("_eps", 0.5)
        x0, x1 = data(1)
        res = solve_bridge(x0, x1, eps, config=SBConfig(**(base | kw)), progress=lambda m: None)
        out[name] = fp(res, x0)
    # resume: run 6 steps with a checkpoint, then continue to 12
    with tempfile.TemporaryDirectory() as d:
        ck = os.path.join(d, "s.pt")
        x0, x1 = data(2)
        cfg = SBConfig(**(base | dict(coupling="independent", holdout=0.2, outer_steps=6)))
        solve_bridge(x0, x1, 0.5, config=cfg, checkpoint=ck, progress=lambda m: None)
        from dataclasses import replace

        res = solve_bridge(
            x0, x1, 0.5, config=replace(cfg, outer_steps=12), checkpoint=ck, resume=True, progress=lambda m: None
        )
        out["resume_indep_holdout_refine"] = fp(res, x0)
        p = os.path.join(d, "r.pt")
        res.save(p)
        out["reload"] = fp(BridgeResult.load(p), x0)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
