"""``bridge sample``: the learned coupling of a solved bridge, sampled at given points.

``bridge sample --run RUN_DIR --source X0.npy --per-point K --out Y.npy`` draws K forward-SDE
samples of x1 (of X_T with ``--time T``; exact draws for a mixture-family bridge) for each row
of X0 (:meth:`bridge.sb.BridgeResult.sample`) and writes them as a
float32 array ``(n, K, d)``, in chunks and atomically. ``--source NAME --n N`` draws the N rows of
X0 from a built-in data set instead (a plain ``gaussian`` in the bridge's dimension), from ``--seed``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..data import DATASETS
from ..sb.result import SAMPLE_METHODS
from .args import positive_int, steps_or_auto
from .common import log, require_device
from .errors import UsageError, user_input
from .lock import lock_output

__all__ = ["SAMPLE_CHUNK", "add_parser", "run"]

#: SDE trajectories integrated at once (rows x samples per row).
SAMPLE_CHUNK = 65536


def add_parser(sub, parents=()) -> None:
    """The ``sample`` subcommand and its options."""
    p = sub.add_parser(
        "sample",
        parents=list(parents),
        help="sample the learned coupling of a `bridge solve` run",
        description="K forward-SDE samples of x1 for each row of X0 from a solved bridge (RUN_DIR/bridge.pt), "
        "written as a float32 array of shape (n, K, d) to Y.npy (atomically).",
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="directory of a `bridge solve` run")
    p.add_argument(
        "--source",
        required=True,
        metavar="X0",
        help="starting points x0: a .npy/.npz/.csv file of shape (n, d), or a built-in data set to draw --n "
        f"points from ({', '.join(DATASETS)}; gaussian is N(0, I) in the bridge's dimension, gaussian:D in D)",
    )
    p.add_argument(
        "--n",
        type=positive_int,
        default=1000,
        metavar="N",
        help="points drawn when --source is a built-in data set (default 1000; ignored for a file)",
    )
    p.add_argument(
        "--per-point", required=True, type=positive_int, metavar="K", help="samples of x1 per row of the source"
    )
    p.add_argument("--out", required=True, metavar="Y.npy", help="output .npy file (float32, shape (n, K, d))")
    p.add_argument(
        "--steps",
        type=steps_or_auto,
        default="auto",
        metavar="N",
        help="Heun steps of the SDE, uniform in s with t = 1 - (1-s)^2, or auto (default): doubled on a pilot "
        "batch until twice as many steps change the samples' conditional law by under 0.1%% cBW2-UVP",
    )
    p.add_argument(
        "--time",
        type=unit_time,
        default=1.0,
        metavar="T",
        help="sample X_T, T in (0, 1] (default 1: x1); the SDE then runs from 0 to T",
    )
    p.add_argument(
        "--method",
        default="auto",
        choices=SAMPLE_METHODS,
        help="exact: closed-form draws of a mixture-family bridge (--drift-family mixture); sde: integrate "
        "the SDE; auto (default): exact where it applies",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seeds a built-in --source's draws, then the SDE's noise"
    )
    p.add_argument(
        "--max-memory",
        type=positive_int,
        default=None,
        metavar="MB",
        help=f"working memory of one chunk of SDE paths, estimated from the network's size (default: chunks of "
        f"{SAMPLE_CHUNK} paths)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    """``bridge sample``: load the bridge and the points, sample in chunks, write ``Y.npy``."""
    import torch

    require_device(args.device)
    out = _check_paths(args)
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    res, x0 = _load(args, device, gen)
    n, k, d = x0.shape[0], args.per_point, res.dim
    t_start = time.perf_counter()
    with user_input():
        method = res.sampling_method(args.method)
    if method != "exact" and args.steps == "auto":
        args.steps = _auto_steps(args, res, x0, gen, device)
    how = "exact draws (mixture potential)" if method == "exact" else f"{args.steps} Heun steps (end-refined grid)"
    log(args, f"[sample] {n} points x {k} samples of X_{args.time:g}, d={d}, eps={res.eps:g}, {how}")
    with user_input(OSError):
        out.parent.mkdir(parents=True, exist_ok=True)
    lock_output(out, folder=False)  # one process per output file
    _write_npy_atomic(out, (n, k, d), lambda arr: _fill(args, res, x0, arr, gen, device))
    log(args, f"[sample] wrote {out}: float32 array of shape ({n}, {k}, {d}) in {time.perf_counter() - t_start:.1f}s")
    return 0


def unit_time(text: str) -> float:
    """``--time``: a number in (0, 1]."""
    import argparse

    try:
        t = float(text)
    except ValueError:
        t = float("nan")
    if not 0.0 < t <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return t


def _check_paths(args) -> Path:
    """``--run`` a solve run directory, ``--out`` the path of a .npy file; returns ``--out``."""
    run = Path(args.run)
    if not run.is_dir():
        raise UsageError(f"--run: {run} is not a directory")
    if not (run / "bridge.pt").is_file():
        raise UsageError(f"--run: {run} has no bridge.pt (not a finished `bridge solve` run)")
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out: {out} is a directory; expected the path of a .npy file")
    if out.suffix.lower() != ".npy":
        raise UsageError(f"--out: expected a file name ending in .npy, got {str(out)!r}")
    return out


def _load(args, device, gen):
    """The run's :class:`~bridge.sb.BridgeResult` and the starting points, of its dimension: a
    file's rows, or ``--n`` draws of a built-in set from ``gen``."""
    from ..data import resolve_samples
    from ..sb import BridgeResult

    with user_input():
        res = BridgeResult.load(Path(args.run) / "bridge.pt", map_location=device)
        x0 = resolve_samples(args.source, args.n, dim=res.dim, generator=gen)
    if x0.shape[1] != res.dim:
        raise UsageError(
            f"--source: {args.source} has dimension {x0.shape[1]} but the run's bridge has dimension {res.dim}"
        )
    return res, x0


def _auto_steps(args, res, x0, gen, device) -> int:
    """``--steps auto``: :meth:`bridge.sb.BridgeResult.choose_steps` on a pilot batch of the
    source's first rows (drawn from ``gen`` before the samples), logged with its reason."""
    dtype = next(res.drift_net.parameters()).dtype
    choice = res.choose_steps(x0.to(device=device, dtype=dtype), generator=gen, time=args.time)
    log(args, f"[sample] --steps auto: {choice.reason}")
    return choice.steps


def _chunk_paths(args, res, dtype) -> int:
    """Paths per chunk: :data:`SAMPLE_CHUNK`, or as many as ``--max-memory`` MB hold by
    :func:`bridge.sb.sde.path_bytes` (at least one)."""
    if args.max_memory is None:
        return SAMPLE_CHUNK
    from ..sb.sde import path_bytes

    return max(1, args.max_memory * 2**20 // path_bytes(res.drift_net, res.dim, dtype))


def _fill(args, res, x0, arr, gen, device) -> None:
    """Sample into ``arr[i, j]`` in chunks of at most :data:`SAMPLE_CHUNK` trajectories (or ``--max-memory``), with a
    progress line every :data:`bridge.progress.EVERY_S` seconds (reported step by step inside a
    chunk, so the first comes early even when one chunk takes minutes)."""
    from ..progress import Progress

    n, k = x0.shape[0], args.per_point
    dtype = next(res.drift_net.parameters()).dtype
    chunk = _chunk_paths(args, res, dtype)
    rows = max(1, chunk // k)
    k_chunk = min(k, chunk)
    progress = Progress(n * k, "sample", lambda m: log(args, m), unit="samples")
    for i in range(0, n, rows):
        xb = x0[i : i + rows].to(device=device, dtype=dtype)
        for j in range(0, k, k_chunk):
            kk = min(k_chunk, k - j)
            part = progress.part(i * k + xb.shape[0] * j, xb.shape[0] * kk)
            try:
                y = res.sample(
                    xb, per_point=kk, steps=args.steps, generator=gen, progress=part, time=args.time, method=args.method
                )
            except FloatingPointError as exc:
                raise UsageError(f"--steps: the SDE diverged ({exc}); try more --steps") from None
            arr[i : i + xb.shape[0], j : j + kk] = y.detach().cpu().float().numpy()


def _write_npy_atomic(path: Path, shape, fill) -> None:
    """Create ``path`` as a float32 ``.npy`` of ``shape`` filled by ``fill(array)``, atomically.

    The array is a memory map on a temporary file next to ``path`` (memory stays bounded),
    moved into place with ``os.replace`` only when ``fill`` returns; on any error the temporary
    file is removed and ``path`` is untouched.
    """
    import os

    import numpy as np

    from ..checkpoint import make_temp_beside

    tmp = make_temp_beside(path)
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape))
        fill(arr)
        arr.flush()
        del arr
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
