"""Helpers the subcommands share: progress lines, the output directory, the device, the data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

from torch import Tensor

from ..data import DATASETS
from .errors import UsageError, in_command_terms, user_input

__all__ = ["DATA_HELP", "Split", "load_pair", "log", "prepare_out", "recorded_arguments", "require_device"]

#: What a data argument accepts (the names are :data:`bridge.data.DATASETS`).
DATA_HELP = (
    f"built-in data set ({', '.join(DATASETS)}; gaussian is N(0, I) in the other side's dimension, "
    "gaussian:D in dimension D) or .npy/.npz/.csv file of shape (n, d)"
)


def log(args, msg: str) -> None:
    """A progress line on stderr, unless ``--quiet``; advice from the library in it is worded in
    the command's flags (:func:`~bridge.cli.errors.in_command_terms`)."""
    if not args.quiet:
        print(in_command_terms(msg), file=sys.stderr, flush=True)


def recorded_arguments(args) -> dict:
    """The command's options as its JSON record keeps them (not the subcommand, not ``--traceback``)."""
    return {k: v for k, v in vars(args).items() if k not in ("command", "traceback")}


def require_device(device: str) -> None:
    """Refuse ``--device cuda`` where torch sees no CUDA device."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device: cuda requested but torch reports no CUDA device")


def prepare_out(path: str) -> Path:
    """The output directory ``path``, created if needed and locked for this command
    (:func:`bridge.cli.lock.lock_output`: a second command on it is refused)."""
    from .lock import lock_output

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    return lock_output(out)


class Split(NamedTuple):
    """Source and target samples, each split into training and held-out rows."""

    x0_train: Tensor
    x0_test: Tensor
    x1_train: Tensor
    x1_test: Tensor


#: Held-out points per side that a run's evaluation needs at least (two samples make a spread, a
#: covariance, a noise floor), and training points per side that training needs at least.
MIN_HELD_OUT = 2
MIN_TRAIN = 2


def load_pair(source: str, target: str, n_train: int, n_test: int, gen, *, test_option: str = "--n-test") -> Split:
    """Source and target samples (built-in names or files), each split into train and held-out rows.

    A built-in set is drawn at ``n_train + n_test`` rows (a plain ``gaussian`` in the other side's
    dimension, :func:`bridge.data.resolve_pair`); from a file at most a quarter of the rows is held out.
    Data that the run cannot use is refused here, before any training (:func:`_check_sizes`);
    ``test_option`` is the command's option for ``n_test``.
    """
    from ..data import parse_builtin, resolve_pair, split_train_test

    n_total = n_train + n_test
    with user_input():
        names = (f"--source {source}", f"--target {target}")
        x0, x1 = resolve_pair(source, target, n_total, generator=gen, names=names)
    n_test0 = n_test if parse_builtin(source) is not None else min(n_test, x0.shape[0] // 4)
    n_test1 = n_test if parse_builtin(target) is not None else min(n_test, x1.shape[0] // 4)
    for option, spec, x, held in (("--source", source, x0, n_test0), ("--target", target, x1, n_test1)):
        _check_sizes(f"{option} {spec}", x.shape, held, parse_builtin(spec) is not None, n_test, test_option)
    x0_tr, x0_te = split_train_test(x0, n_test0, generator=gen)
    x1_tr, x1_te = split_train_test(x1, n_test1, generator=gen)
    return Split(x0_tr, x0_te, x1_tr, x1_te)


def _check_sizes(name: str, shape, held: int, built_in: bool, n_test: int, test_option: str) -> None:
    """Refuse one side's samples (``shape`` ``(n, d)``, ``held`` of them held out) when the run
    cannot use them: fewer samples than dimensions (a transposed array?), too few held-out points
    for the evaluation, too few training points. Each message says the minimum and what to change."""
    n, d = shape
    if n < d:
        fix = "raise --n-train" if built_in else "is the array transposed? A file holds one sample per row, (n, d)"
        raise UsageError(f"{name}: {n} samples of dimension {d}, fewer samples than dimensions; {fix}")
    if n_test < MIN_HELD_OUT:
        raise UsageError(
            f"{test_option}: the evaluation needs at least {MIN_HELD_OUT} held-out points per side, got {n_test}"
        )
    if held < MIN_HELD_OUT:
        raise UsageError(
            f"{name}: {n} samples leave {held} held-out point{'' if held == 1 else 's'} for the evaluation, which "
            f"needs at least {MIN_HELD_OUT} per side (a quarter of a file's rows, at most {test_option}); give at "
            f"least {4 * MIN_HELD_OUT} samples"
        )
    if n - held < MIN_TRAIN:
        raise UsageError(f"--n-train: training needs at least {MIN_TRAIN} samples per side, got {n - held}")
