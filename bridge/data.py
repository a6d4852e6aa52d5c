r"""Data: built-in data sets, sample-file loaders and input validation.

Built-in data sets, each ``fn(n, *, generator=None, dtype=torch.float32) -> Tensor (n, 2)``
with i.i.d. rows (conventions of FFJORD's ``toy_data.py``, Grathwohl et al. 2019, unless stated);
``gaussian`` alone takes a dimension (``gaussian(n, dim=D)``, by name ``gaussian:D``):

============== ====================================================================== ============
name           law                                                                    support
============== ====================================================================== ============
gaussian       :math:`N(0, I_D)`, D = 2 unless ``gaussian:D`` or ``dim=D``            R^D
checkerboard   uniform on the 8 dark squares (side 2) of a 4x4 board on [-4, 4]^2     [-4, 4]^2
8gaussians     equal mixture of N(c_k, 0.5^2/2 I), c_k = 2 sqrt2 (cos k pi/4, sin ..) R^2
moons          two interleaving half circles of radius 2, N(0, 0.2^2 I) noise, centred R^2
spirals        two opposite spiral arms out to radius pi, N(0, 0.1^2 I) noise         R^2
rings          4 concentric circles of radii 0.75, 1.5, 2.25, 3, N(0, 0.08^2 I) noise R^2
============== ====================================================================== ============

:data:`DATASETS` maps these names to the functions (the CLI's table); :func:`make_dataset`
looks one up (``gaussian:D`` included, :func:`parse_builtin` reads such names). :func:`load_samples`
reads ``.npy``/``.npz``/``.csv`` files (never unpickling), :func:`resolve_samples` accepts either a
built-in name or a file, :func:`resolve_pair` a source and a target (a plain ``gaussian`` takes the
other side's dimension), and :func:`check_same_dim`, :func:`split_train_test` are small helpers for
the command line and scripts.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> make_dataset("checkerboard", 1000, generator=g).shape
    torch.Size([1000, 2])
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "gaussian",
    "checkerboard",
    "eight_gaussians",
    "moons",
    "spirals",
    "rings",
    "DATASETS",
    "Builtin",
    "parse_builtin",
    "is_standard_normal",
    "make_dataset",
    "load_samples",
    "resolve_samples",
    "resolve_pair",
    "check_same_dim",
    "split_train_test",
    "TrainTestSplit",
]

SUPPORTED_EXTENSIONS = (".npy", ".npz", ".csv")
NPZ_KEYS = ("x", "samples", "arr_0")
#: The dimension of every built-in data set but ``gaussian``, and of a ``gaussian`` given none.
BUILTIN_DIM = 2


# --------------------------------------------------------------------------------------------
# Built-in data sets
# --------------------------------------------------------------------------------------------


def _setup(n, generator: torch.Generator | None, dtype: torch.dtype) -> dict:
    """Validate the common arguments; return the ``dtype``/``device`` keywords for torch RNGs."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    device = generator.device if generator is not None else torch.device("cpu")
    return {"dtype": dtype, "device": device}


def gaussian(
    n: int, *, dim: int = BUILTIN_DIM, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""Standard normal samples in dimension ``dim`` (the plane by default).

    .. math:: x \sim N(0, I_D), \qquad \log \rho(x) = -\tfrac12 |x|^2 - \tfrac D2 \log 2\pi.

    Args:
        n: number of samples.
        dim: the dimension D (default 2; by name: ``gaussian:D``).
        generator: source of randomness (its device is the output's device).
        dtype: floating dtype of the output.

    Returns:
        ``(n, dim)`` tensor: ``torch.randn(n, dim)`` drawn from ``generator``.

    Example:
        >>> import torch
        >>> gaussian(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
        >>> gaussian(3, dim=5).shape
        torch.Size([3, 5])
    """
    kw = _setup(n, generator, dtype)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim: expected a positive int, got {dim!r}")
    return torch.randn(n, int(dim), generator=generator, **kw)


def checkerboard(n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Uniform law on the dark squares of a 4 x 4 checkerboard (the paper's Sec. 7.1 target).

    .. math::
        u_1 \sim U[-2, 2),\quad u_2 = U[0, 1) - 2\,\mathrm{Bernoulli}(1/2) + (\lfloor u_1\rfloor \bmod 2),
        \quad x = 2 (u_1, u_2).

    The support is the union of the 8 squares of side 2 in :math:`[-4, 4]^2` whose cell indices
    :math:`(\lfloor x_1/2\rfloor, \lfloor x_2/2\rfloor) \in \{-2,\dots,1\}^2` have an even sum; the
    density is ``1/32`` there. Each coordinate is uniform on ``[-4, 4]`` (mean 0, variance 16/3).

    Args:
        n: number of samples.
        generator: source of randomness (its device is the output's device).
        dtype: floating dtype of the output.

    Returns:
        ``(n, 2)`` tensor.

    Example:
        >>> import torch
        >>> x = checkerboard(1000, generator=torch.Generator().manual_seed(0))
        >>> cells = torch.floor(x / 2).sum(1).remainder(2)
        >>> bool((cells == 0).all()), bool((x.abs() <= 4).all())
        (True, True)
    """
    kw = _setup(n, generator, dtype)
    u1 = 4 * torch.rand(n, generator=generator, **kw) - 2
    flip = torch.randint(0, 2, (n,), generator=generator, device=kw["device"]).to(dtype)
    u2 = torch.rand(n, generator=generator, **kw) - 2 * flip + torch.floor(u1).remainder(2)
    return 2 * torch.stack([u1, u2], dim=1)


EIGHT_GAUSSIANS_RADIUS = 2 * math.sqrt(2)
EIGHT_GAUSSIANS_STD = 0.5 / math.sqrt(2)


def eight_gaussians(n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Equal-weight mixture of 8 Gaussians with centres on a circle.

    .. math::
        x \sim \frac18 \sum_{k=0}^{7} N\big(r (\cos\tfrac{k\pi}{4}, \sin\tfrac{k\pi}{4}),\ \sigma^2 I_2\big),
        \qquad r = 2\sqrt2 \approx 2.83,\ \sigma = 0.5/\sqrt2 \approx 0.354

    (FFJORD's convention: centres at radius 4 and std 0.5, all divided by sqrt 2).

    Args:
        n: number of samples.
        generator: source of randomness (its device is the output's device).
        dtype: floating dtype of the output.

    Returns:
        ``(n, 2)`` tensor.

    Example:
        >>> import torch
        >>> x = eight_gaussians(2000, generator=torch.Generator().manual_seed(0))
        >>> bool((x.norm(dim=1) - 2 * 2**0.5).abs().mean() < 0.4)
        True
    """
    kw = _setup(n, generator, dtype)
    k = torch.randint(0, 8, (n,), generator=generator, device=kw["device"]).to(dtype)
    angle = k * (math.pi / 4)
    centres = EIGHT_GAUSSIANS_RADIUS * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + EIGHT_GAUSSIANS_STD * torch.randn(n, 2, generator=generator, **kw)


def moons(n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Two interleaving half circles (scikit-learn's ``make_moons`` shape, implemented here).

    With :math:`\theta \sim U[0, \pi]` and a fair label :math:`\ell \in \{0, 1\}`,

    .. math::
        p = \begin{cases} (\cos\theta, \sin\theta) & \ell = 0 \\
                          (1 - \cos\theta, \tfrac12 - \sin\theta) & \ell = 1 \end{cases},
        \qquad x = 2\big(p - (\tfrac12, \tfrac14)\big) + 0.2\, \xi,\quad \xi \sim N(0, I_2).

    The shift centres the noiseless law exactly (mean 0); the half circles have radius 2 and the
    noise has std 0.2 (0.1 before the factor 2); the noiseless curves lie in
    ``[-3, 3] x [-1.5, 1.5]``.

    Args:
        n: number of samples.
        generator: source of randomness (its device is the output's device).
        dtype: floating dtype of the output.

    Returns:
        ``(n, 2)`` tensor.

    Example:
        >>> import torch
        >>> x = moons(4000, generator=torch.Generator().manual_seed(0))
        >>> x.mean(0).abs().max() < 0.1
        tensor(True)
    """
    kw = _setup(n, generator, dtype)
    theta = math.pi * torch.rand(n, generator=generator, **kw)
    lower = torch.randint(0, 2, (n,), generator=generator, device=kw["device"]).to(dtype)
    px = torch.cos(theta) + lower * (1 - 2 * torch.cos(theta))
    py = torch.sin(theta) + lower * (0.5 - 2 * torch.sin(theta))
    p = torch.stack([px - 0.5, py - 0.25], dim=1)
    return 2 * p + 0.2 * torch.randn(n, 2, generator=generator, **kw)


def spirals(n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Two spiral arms, each the point reflection of the other.

    With :math:`\theta = 3\pi\sqrt{u}`, :math:`u \sim U[0, 1]` (so the points are spread evenly
    along the arms' area rather than their angle) and a fair sign :math:`\pm`,

    .. math:: x = \pm \frac{\theta}{3} (-\cos\theta, \sin\theta) + 0.1\, \xi,\quad \xi \sim N(0, I_2).

    Each arm turns 1.5 times (540 degrees, as FFJORD's ``2spirals``) out to radius :math:`\pi`;
    the noise has std 0.1 (FFJORD adds an extra uniform jitter, which we omit).

    Args:
        n: number of samples.
        generator: source of randomness (its device is the output's device).
        dtype: floating dtype of the output.

    Returns:
        ``(n, 2)`` tensor.

    Example:
        >>> import torch
        >>> x = spirals(1000, generator=torch.Generator().manual_seed(0))
        >>> bool(x.norm(dim=1).max() < 4)
        True
    """
    kw = _setup(n, generator, dtype)
    theta = 3 * math.pi * torch.sqrt(torch.rand(n, generator=generator, **kw))
    sign = 2 * torch.randint(0, 2, (n,), generator=generator, device=kw["device"]).to(dtype) - 1
    arm = (theta / 3 * sign).unsqueeze(1) * torch.stack([-torch.cos(theta), torch.sin(theta)], dim=1)
    return arm + 0.1 * torch.randn(n, 2, generator=generator, **kw)


RINGS_RADII = (0.75, 1.5, 2.25, 3.0)
RINGS_STD = 0.08


def rings(n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Four concentric noisy circles (FFJORD's ``rings``), each chosen with probability 1/4.

    .. math::
        x = r_k (\cos\theta, \sin\theta) + 0.08\, \xi,\quad r_k \in \{0.75, 1.5, 2.25, 3\},\
        \theta \sim U[0, 2\pi),\ \xi \sim N(0, I_2).

    Args:
        n: number of samples.
        generator: source of randomness (its device is the output's device).
        dtype: floating dtype of the output.

    Returns:
        ``(n, 2)`` tensor.

    Example:
        >>> import torch
        >>> x = rings(1000, generator=torch.Generator().manual_seed(0))
        >>> bool(x.norm(dim=1).max() < 3.5)
        True
    """
    kw = _setup(n, generator, dtype)
    k = torch.randint(0, len(RINGS_RADII), (n,), generator=generator, device=kw["device"])
    radius = torch.tensor(RINGS_RADII, **kw)[k]
    theta = 2 * math.pi * torch.rand(n, generator=generator, **kw)
    circle = radius.unsqueeze(1) * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    return circle + RINGS_STD * torch.randn(n, 2, generator=generator, **kw)


DATASETS: dict[str, Callable[..., Tensor]] = {
    "gaussian": gaussian,
    "checkerboard": checkerboard,
    "8gaussians": eight_gaussians,
    "moons": moons,
    "spirals": spirals,
    "rings": rings,
}
"""Built-in data set names -> generators ``fn(n, *, generator=None, dtype=torch.float32)``
(``gaussian`` also takes ``dim``; by name ``gaussian:D``, see :func:`parse_builtin`)."""


class Builtin(NamedTuple):
    """A built-in data set name, read by :func:`parse_builtin`: ``name`` a key of :data:`DATASETS`
    and ``dim`` its dimension, ``None`` for a plain ``gaussian`` (whose dimension the caller chooses)."""

    name: str
    dim: int | None


def parse_builtin(spec) -> Builtin | None:
    """Read a built-in data set name: ``NAME`` (a key of :data:`DATASETS`) or ``gaussian:D``.

    Args:
        spec: a data set name or anything else (a file path: then ``None``).

    Returns:
        :class:`Builtin` ``(name, dim)``: ``dim`` is ``D`` for ``gaussian:D``, ``None`` for a plain
        ``gaussian`` and 2 for the other sets; ``None`` if ``spec`` names no built-in set.

    Raises:
        ValueError: ``gaussian:D`` with ``D`` not a positive integer.

    Example:
        >>> parse_builtin("gaussian:3"), parse_builtin("moons"), parse_builtin("x.npy")
        (Builtin(name='gaussian', dim=3), Builtin(name='moons', dim=2), None)
    """
    if not isinstance(spec, str):
        return None
    if spec in DATASETS:
        return Builtin(spec, None if spec == "gaussian" else BUILTIN_DIM)
    name, _, dim = spec.partition(":")
    if name != "gaussian":
        return None
    if not (dim.isascii() and dim.isdigit() and int(dim) >= 1):
        raise ValueError(f"{spec!r}: the D of gaussian:D (N(0, I_D)) must be a positive integer, got {dim!r}")
    return Builtin("gaussian", int(dim))


def is_standard_normal(spec) -> bool:
    """Whether ``spec`` names the standard normal law (``gaussian`` or ``gaussian:D``), the one
    built-in set whose density the likelihood estimators take as known.

    Example:
        >>> is_standard_normal("gaussian:3"), is_standard_normal("moons"), is_standard_normal("x0.npy")
        (True, False, False)
    """
    builtin = parse_builtin(spec)
    return builtin is not None and builtin.name == "gaussian"


def make_dataset(
    name: str,
    n: int,
    *,
    dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` samples of the built-in data set ``name`` (a key of :data:`DATASETS`, or ``gaussian:D``).

    Args:
        name: one of ``gaussian, checkerboard, 8gaussians, moons, spirals, rings``, or
            ``gaussian:D`` for :math:`N(0, I_D)`.
        n: number of samples.
        dim: the dimension a plain ``gaussian`` takes (default 2); ``gaussian:D`` and the other
            sets, which are 2-D, keep their own.
        generator: source of randomness (its device is the output's device).
        dtype: floating dtype of the output.

    Returns:
        ``(n, d)`` tensor (``d = 2`` but for ``gaussian``).

    Raises:
        ValueError: ``name`` is not a built-in data set (the message lists the valid names), or
            ``gaussian:D`` has a ``D`` that is not a positive integer.

    Example:
        >>> import torch
        >>> make_dataset("moons", 5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
        >>> make_dataset("gaussian:3", 5).shape
        torch.Size([5, 3])
    """
    builtin = parse_builtin(name)
    if builtin is None:
        raise ValueError(f"name: unknown data set {name!r}; expected one of {', '.join(DATASETS)} or gaussian:D")
    if builtin.name == "gaussian":
        d = builtin.dim if builtin.dim is not None else BUILTIN_DIM if dim is None else dim
        return gaussian(n, dim=d, generator=generator, dtype=dtype)
    return DATASETS[builtin.name](n, generator=generator, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def _read_numpy(path: str) -> np.ndarray:
    """Read a .npy array or pick the samples array of a .npz archive (content decides, not the name)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "Object arrays" in str(err):
            raise ValueError(f"{path!r}: holds Python objects (non-numeric values); refusing to unpickle") from None
        raise ValueError(f"{path!r}: not a readable NumPy file ({err})") from None
    except Exception as err:  # OSError, EOFError, zipfile.BadZipFile, ...
        raise ValueError(f"{path!r}: not a readable NumPy file ({err})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.files)
        if not keys:
            raise ValueError(f"{path!r}: the .npz archive holds no arrays")
        key = keys[0] if len(keys) == 1 else next((k for k in NPZ_KEYS if k in keys), None)
        if key is None:
            raise ValueError(
                f"{path!r}: holds several arrays ({', '.join(keys)}) and none is named "
                f"{' / '.join(NPZ_KEYS)}; save the samples under one of those keys"
            )
        try:
            return loaded[key]
        except ValueError as err:
            if "Object arrays" in str(err):
                raise ValueError(
                    f"{path!r}: array {key!r} holds Python objects (non-numeric values); refusing to unpickle"
                ) from None
            raise ValueError(f"{path!r}: array {key!r} is not readable ({err})") from None
        except Exception as err:
            raise ValueError(f"{path!r}: array {key!r} is not readable ({err})") from None


def _parse_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _read_csv(path: str) -> np.ndarray:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            lines = [(i, row) for i, row in enumerate(csv.reader(fh), start=1) if any(f.strip() for f in row)]
    except UnicodeDecodeError:
        raise ValueError(f"{path!r}: not a text .csv file (cannot decode as UTF-8)") from None
    if not lines:
        raise ValueError(f"{path!r}: the file is empty (0 rows)")
    first_line, first = lines[0]
    if any(_parse_float(f) is None for f in first):  # a header row: skip it
        lines = lines[1:]
        if not lines:
            raise ValueError(f"{path!r}: has a header row but 0 data rows")
    width = len(lines[0][1])
    data = np.empty((len(lines), width), dtype=np.float64)
    for r, (line_no, row) in enumerate(lines):
        if len(row) != width:
            raise ValueError(f"{path!r}: line {line_no} has {len(row)} columns, expected {width}")
        for c, field in enumerate(row):
            value = _parse_float(field)
            if value is None:
                raise ValueError(f"{path!r}: non-numeric value {field!r} at line {line_no}, column {c + 1}")
            data[r, c] = value
    return data


def load_samples(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Load an ``(n, d)`` sample set from a ``.npy``, ``.npz`` or ``.csv`` file.

    * ``.npy``: one array. ``.npz``: the single array it holds, or else the one named ``x``,
      ``samples`` or ``arr_0`` (in that order of preference).
    * ``.csv``: comma separated numbers, one sample per line; a first line that does not parse
      as numbers is taken as a header and skipped; blank lines are skipped.
    * A 1-D array of shape ``(n,)`` is read as ``n`` one-dimensional samples, shape ``(n, 1)``.

    Files are never unpickled (``np.load(..., allow_pickle=False)``).

    Args:
        path: file to read; the extension (case-insensitive) selects the format.
        dtype: floating dtype of the returned tensor.

    Returns:
        ``(n, d)`` tensor with ``n >= 2``, all values finite.

    Raises:
        ValueError: one line naming the file and the problem — missing file, unknown extension,
            unreadable/empty file, zero rows or columns, rank 0 or >= 3, non-numeric values,
            NaN/Inf (with the number of affected rows), fewer than 2 samples.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> f = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(f, np.arange(6.0).reshape(3, 2))
        >>> load_samples(f)
        tensor([[0., 1.],
                [2., 3.],
                [4., 5.]])
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path!r}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path!r}: is a directory, expected a .npy, .npz or .csv file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"{path!r}: unknown extension {ext or '(none)'!r}; expected one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r}: the file is empty (0 bytes)")
    if ext in (".npy", ".npz"):
        arr = _read_numpy(path)
    else:
        arr = _read_csv(path)

    if arr.dtype.kind == "c":
        raise ValueError(f"{path!r}: complex values (dtype {arr.dtype}) are not supported")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{path!r}: non-numeric values (dtype {arr.dtype})")
    if arr.ndim == 0:
        raise ValueError(f"{path!r}: holds a scalar (rank 0), expected rank 2 (n, d) or rank 1 (n,)")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim >= 3:
        raise ValueError(
            f"{path!r}: array has rank {arr.ndim} (shape {arr.shape}), expected rank 2 (n, d) or rank 1 (n,)"
        )
    n, d = arr.shape
    if n == 0:
        raise ValueError(f"{path!r}: holds 0 samples (shape {arr.shape})")
    if d == 0:
        raise ValueError(f"{path!r}: samples have 0 coordinates (shape {arr.shape})")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(f"{path!r}: NaN or Inf in {int(bad.sum())} of {n} rows (first at sample index {first})")
    if n < 2:
        raise ValueError(f"{path!r}: holds {n} sample, expected at least 2")
    return torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)


def resolve_samples(
    spec: str | os.PathLike,
    n: int | None = None,
    *,
    dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Samples from a built-in data set name (``gaussian:D`` included) or from a file.

    If ``spec`` names a built-in set (:func:`parse_builtin`), draw ``n`` samples; otherwise, if it
    names an existing file, load all of it with :func:`load_samples` (``n`` is then ignored: no
    subsampling). A built-in name wins over a file of the same name in the working directory.

    Args:
        spec: data set name or file path.
        n: number of samples for a built-in data set (required there, ignored for files).
        dim: the dimension a plain ``gaussian`` takes (default 2).
        generator: source of randomness for a built-in data set.
        dtype: floating dtype of the output.

    Returns:
        ``(n, d)`` tensor.

    Raises:
        ValueError: ``spec`` is neither a built-in name nor an existing file, ``n`` is missing
            for a built-in data set, ``gaussian:D`` has a bad ``D``, or the file is invalid (see
            :func:`load_samples`).

    Example:
        >>> import torch
        >>> resolve_samples("rings", 10, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([10, 2])
        >>> resolve_samples("gaussian", 10, dim=3).shape
        torch.Size([10, 3])
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"spec: expected a data set name or a file path, got {type(spec).__name__}")
    if parse_builtin(spec) is not None:
        if n is None:
            raise ValueError(f"n: needed to draw samples from the built-in data set {spec!r}")
        return make_dataset(spec, n, dim=dim, generator=generator, dtype=dtype)
    path = os.fspath(spec)
    if not os.path.isfile(path):
        name, colon, _ = path.partition(":")
        hint = f"; only gaussian takes a dimension (gaussian:D), {name} is 2-D" if colon and name in DATASETS else ""
        raise ValueError(
            f"{path!r} is neither a built-in data set ({', '.join(DATASETS)}, gaussian:D) nor an existing file{hint}"
        )
    return load_samples(path, dtype=dtype)


def resolve_pair(
    source: str | os.PathLike,
    target: str | os.PathLike,
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    names: tuple[str, str] = ("source", "target"),
) -> tuple[Tensor, Tensor]:
    """Source and target samples of one dimension (:func:`resolve_samples` for each).

    A plain ``gaussian`` takes the other side's dimension: a file's, or a built-in set's
    (``gaussian:D``'s D, 2 for the others); both plain, it is 2-D. Files are read first, then the
    built-in sets drawn in the order source, target from ``generator``, so that 2-D draws are those
    of ``resolve_samples(source, n)`` followed by ``resolve_samples(target, n)``.

    Args:
        source, target: data set names or file paths.
        n: number of samples of each built-in data set.
        generator: source of randomness for the built-in data sets.
        dtype: floating dtype of the outputs.
        names: how to call the two sides in the error message.

    Returns:
        ``(x0, x1)``, shapes ``(n0, d)`` and ``(n1, d)``.

    Raises:
        ValueError: as :func:`resolve_samples`, or the two sides differ in dimension (see
            :func:`check_same_dim`).

    Example:
        >>> x0, x1 = resolve_pair("gaussian", "gaussian:3", 10)
        >>> x0.shape, x1.shape
        (torch.Size([10, 3]), torch.Size([10, 3]))
    """
    specs = (source, target)
    builtins = [parse_builtin(spec) for spec in specs]
    files = [resolve_samples(spec, dtype=dtype) if b is None else None for spec, b in zip(specs, builtins)]
    dims = [x.shape[1] if x is not None else b.dim for x, b in zip(files, builtins)]
    x0, x1 = [  # in order: the source's draws first
        x if x is not None else resolve_samples(spec, n, dim=other, generator=generator, dtype=dtype)
        for spec, x, other in zip(specs, files, dims[::-1])
    ]
    check_same_dim(x0, x1, names=names)
    return x0, x1


def check_same_dim(x0: Tensor, x1: Tensor, names: tuple[str, str] = ("source", "target")) -> None:
    """Check that two sample sets are ``(n, d)`` tensors with the same ``d``.

    Args:
        x0, x1: sample tensors, shapes ``(n0, d0)`` and ``(n1, d1)``.
        names: how to call them in the error message.

    Raises:
        TypeError: an input is not a tensor.
        ValueError: an input is not 2-D, or ``d0 != d1``
            (e.g. ``"source has dimension 2 but target has dimension 3"``).

    Example:
        >>> import torch
        >>> check_same_dim(torch.zeros(4, 2), torch.zeros(7, 2))  # passes silently
    """
    for x, name in zip((x0, x1), names):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2:
            raise ValueError(f"{name}: expected a 2-D tensor of shape (n, d), got shape {tuple(x.shape)}")
    if x0.shape[1] != x1.shape[1]:
        raise ValueError(f"{names[0]} has dimension {x0.shape[1]} but {names[1]} has dimension {x1.shape[1]}")


class TrainTestSplit(NamedTuple):
    """Result of :func:`split_train_test`; unpacks as ``train, test``."""

    train: Tensor
    test: Tensor


def split_train_test(x: Tensor, n_test: int, *, generator: torch.Generator | None = None) -> TrainTestSplit:
    """Split the rows of ``x`` at random into a training and a test set.

    Args:
        x: ``(n, ...)`` tensor.
        n_test: number of test rows, ``1 <= n_test <= n - 1``.
        generator: source of randomness for the permutation.

    Returns:
        :class:`TrainTestSplit` ``(train, test)`` with ``n - n_test`` and ``n_test`` rows, which
        together are a permutation of the rows of ``x``.

    Example:
        >>> import torch
        >>> train, test = split_train_test(torch.arange(10.0).unsqueeze(1), 3,
        ...                                generator=torch.Generator().manual_seed(0))
        >>> train.shape, test.shape
        (torch.Size([7, 1]), torch.Size([3, 1]))
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError("x: expected at least one dimension (rows), got a scalar tensor")
    n = x.shape[0]
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or not 1 <= n_test <= n - 1:
        raise ValueError(f"n_test: expected an int in [1, {n - 1}] for {n} rows, got {n_test!r}")
    device = generator.device if generator is not None else x.device
    perm = torch.randperm(n, generator=generator, device=device).to(x.device)
    return TrainTestSplit(train=x[perm[n_test:]], test=x[perm[:n_test]])
