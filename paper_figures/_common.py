"""Shared plumbing for the figure scripts: arguments, the data cache, the JSON record, styling.

Every figure module defines

* ``NAME`` (str) and ``PAPER`` (str): the paper figure it reproduces, or ``"new"``;
* ``compute(args, log) -> (arrays: dict[str, np.ndarray], record: dict)``: the experiment.
  ``args`` has ``quick`` (bool), ``seed`` (int), ``out`` (Path); ``log`` prints progress.
  :func:`run_figure` runs it with one torch thread (restored afterwards).
  ``record`` holds the config and key numbers (JSON-serialisable), including
  ``record["findings"]``: a dict ``{finding: bool}`` of the paper's qualitative claims checked;
* ``plot(arrays, record, out_dir) -> list[Path]``: draws PNGs from cached data only;

and ends with ``if __name__ == "__main__": main_for(sys.modules[__name__])``.

:func:`run_figure` handles ``--quick``, ``--out``, ``--seed``, ``--replot``: it caches the
arrays in ``<out>/<name>.npz``, writes ``<out>/<name>.json`` (seed, config, package versions,
wall time, key numbers) and redraws from the cache with ``--replot``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from bridge.interpolants import BrownianGamma, QuadraticGamma, SinSquaredGamma, ZeroGamma

DEFAULT_OUT = Path("paper_figures/out")

# One palette for every figure: the same method / eps / gamma gets the same colour everywhere.
COLORS = {
    "ode": "#1f77b4",
    "sde": "#d62728",
    "reference": "#2ca02c",
    "bridge": "#d62728",
    "pot": "#2ca02c",
    "sf2m": "#9467bd",
    "floor": "#7f7f7f",
    "source": "#1f77b4",
    "target": "#ff7f0e",
}
EPS_COLORS = {0.0: "#1f77b4", 0.5: "#ff7f0e", 1.0: "#2ca02c", 2.5: "#d62728"}
# The gamma schedules the paper compares (SI 7.1, Fig. 6), by the keys of GAMMA_COLORS.
GAMMAS = {
    "zero": ZeroGamma,
    "sqrt(t(1-t))": BrownianGamma,
    "t(1-t)": QuadraticGamma,
    "sin^2(pi t)": SinSquaredGamma,
}
GAMMA_LABELS = {
    "zero": r"$\gamma = 0$",
    "sqrt(t(1-t))": r"$\gamma = \sqrt{t(1-t)}$",
    "t(1-t)": r"$\gamma = t(1-t)$",
    "sin^2(pi t)": r"$\gamma = \sin^2(\pi t)$",
}
GAMMA_COLORS = {
    "zero": "#1f77b4",
    "sqrt(t(1-t))": "#ff7f0e",
    "t(1-t)": "#2ca02c",
    "sin^2(pi t)": "#d62728",
}


def eps_color(eps: float) -> str:
    """The colour of a diffusion level, shared across figures (grey for levels outside the set)."""
    return EPS_COLORS.get(float(eps), "#7f7f7f")


def versions() -> dict:
    """Package versions for the JSON record."""
    out = {"python": platform.python_version()}
    for mod in ("torch", "numpy", "scipy", "matplotlib", "ot", "geomloss", "sklearn", "bridge"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001 - optional packages are simply reported absent
            out[mod] = None
    return out


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    summary = doc.strip().splitlines()[0] if doc and doc.strip() else None
    p = argparse.ArgumentParser(prog=f"python -m paper_figures.{name}", description=summary)
    p.add_argument("--quick", action="store_true", help="reduced size, for CI and smoke tests")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replot", action="store_true", help="redraw the PNGs from the cached .npz/.json; no compute")
    return p


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _stem(module: ModuleType, quick: bool) -> str:
    return module.NAME + ("_quick" if quick else "")


def run_figure(module: ModuleType, argv: list[str] | None = None) -> dict:
    """Run one figure module's compute (or load its cache) and plot; return the JSON record."""
    args = parser(module.NAME, module.__doc__).parse_args(argv)
    out = Path(args.out)
    stem = _stem(module, args.quick)
    npz, js = out / f"{stem}.npz", out / f"{stem}.json"
    log = _logger(module.NAME)
    if args.replot:
        if not npz.exists() or not js.exists():
            raise SystemExit(f"error: --replot needs {npz} and {js}; run without --replot first")
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        record = json.loads(js.read_text())
    else:
        out.mkdir(parents=True, exist_ok=True)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small tensors on a shared machine: one thread is faster and comparable
        t0 = time.perf_counter()
        try:
            arrays, record = module.compute(args, log)
        finally:
            torch.set_num_threads(threads)
        wall = time.perf_counter() - t0
        record = {
            "figure": module.NAME,
            "paper": module.PAPER,
            "quick": bool(args.quick),
            "seed": int(args.seed),
            "wall_s": round(wall, 2),
            "versions": versions(),
            **record,
        }
        tmp = npz.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(npz)
        tmp = js.with_suffix(".tmp.json")
        tmp.write_text(json.dumps(_jsonable(record), indent=2) + "\n")
        tmp.replace(js)
        log(f"compute done in {wall:.1f} s; cache {npz}")
    import matplotlib

    matplotlib.use("Agg")
    pngs = module.plot(arrays, record, out)
    for p in pngs:
        log(f"wrote {p}")
    return record


def _logger(name: str):
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{name} {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    return log


def main_for(module: ModuleType) -> None:
    run_figure(module)
