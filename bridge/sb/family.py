r"""``drift_family="auto"``: which drift family a solve uses, decided by a test on held-out samples.

Every member of the mixture family (docs/math.md §5.10) is the exact Schrödinger bridge between
``rho0`` and its own target marginal: its conditional :math:`x_1 \mid x_0` has the SB's form. So
if the fitted mixture's marginal cannot be told apart from ``rho1``, the fitted mixture *is*
the bridge as far as the data can tell, and it is the better choice: exact samples, no SDE, few
parameters. When it can be told apart, ``rho1`` is not well described by the family and the
network family, which can represent any drift, takes over. The procedure (docs/math.md §5.15):

1. Hold out :func:`test_points` points per side (at most :data:`TEST_POINTS`, a
   :data:`TEST_SHARE` of the smaller side; :func:`split_for_test`). With fewer than
   :data:`MIN_TEST_POINTS` the test has no power and the network family is used untested.
2. Train the mixture family on the rest for the first :data:`TRIAL_SHARE` of its run (steps or
   time budget, whichever comes first; the learning-rate schedule is the full run's).
3. Draw one exact :math:`x_1` for each held-out :math:`x_0` and compare these with the held-out
   :math:`x_1` by the energy two-sample test (:func:`energy_test`; Székely and Rizzo 2004).
4. p-value :math:`\ge` :data:`TEST_LEVEL`: the mixture run continues to its end, and the held-out
   points join its training samples (:func:`join_held_out`; the independent coupling, the mixture
   family's own). Otherwise the network family solves on the training part with the rest of the
   time budget ...
5. ... and is held to the same standard at its end (:func:`compare_with_trial`): its samples from
   the held-out :math:`x_0` against the held-out :math:`x_1`, by the same statistic. The family
   closer to the held-out targets is returned: the networks, or the mixture as the trial left it
   (kept beside a checkpoint in :func:`trial_path` so that a resumed solve compares alike).

Settings that only the network family takes (another ``drift_form``, ``gradient_drift=True``, the
neural interpolant, a custom interpolant) choose it without a test (:func:`network_only`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..metrics import energy_distance
from .config import SBConfig
from .couplings import Coupling, IndependentPairs

__all__ = [
    "MIN_BUDGET_SHARE",
    "MIN_TEST_POINTS",
    "PERMUTATIONS",
    "TEST_LEVEL",
    "TEST_POINTS",
    "TEST_SHARE",
    "TRIAL_SHARE",
    "compare_with_trial",
    "EnergyTest",
    "FamilySplit",
    "energy_test",
    "join_held_out",
    "mixture_test",
    "network_only",
    "split_for_test",
    "test_points",
    "trial_path",
]

#: The mixture family's trial: this share of its run (outer steps or time budget) before the test.
TRIAL_SHARE = 0.25
#: Held-out points per side for the test: at most this many ...
TEST_POINTS = 1000
#: ... and at most this share of the smaller side.
TEST_SHARE = 0.1
#: Fewer held-out points than this: no test, the network family.
MIN_TEST_POINTS = 100
#: The mixture family is kept when the test's p-value is at least this.
TEST_LEVEL = 0.05
#: Random permutations of the energy test.
PERMUTATIONS = 500
#: After a rejected trial the network family gets the time budget that is left, but at least this share.
MIN_BUDGET_SHARE = 0.05
#: The split and the test draw from ``seed + SEED_OFFSET`` (never from the training stream).
SEED_OFFSET = 15485863


@dataclass(frozen=True)
class EnergyTest:
    """The energy two-sample test of :func:`energy_test`.

    Attributes:
        statistic: the squared energy distance of the two empirical measures (V-statistic,
            :func:`bridge.metrics.energy_distance`).
        p_value: ``(1 + #{permutations with a statistic >= the observed one}) / (1 + permutations)``.
        permutations: random relabellings drawn.
    """

    statistic: float
    p_value: float
    permutations: int


def _statistics(dist: Tensor, labels: Tensor) -> Tensor:
    """Energy statistics of the splits in ``labels`` ``(N, P)`` (1: first set) of the pooled points
    whose distance matrix is ``dist`` ``(N, N)``; ``(P,)``."""
    a = labels
    b = 1.0 - labels
    na, nb = a.sum(0), b.sum(0)
    da, db = dist @ a, dist @ b
    ab = (a * db).sum(0) / (na * nb)
    aa = (a * da).sum(0) / (na * na)
    bb = (b * db).sum(0) / (nb * nb)
    return 2.0 * ab - aa - bb


def energy_test(x: Tensor, y: Tensor, *, permutations: int = PERMUTATIONS, generator=None) -> EnergyTest:
    r"""The energy two-sample test of ``H0: x and y come from the same law``.

    The statistic is the squared energy distance :math:`2E|X-Y| - E|X-X'| - E|Y-Y'|` of the two
    empirical measures; its null distribution is drawn by relabelling the pooled points at random
    (a permutation test, valid for any law: under ``H0`` the pooled points are exchangeable).
    Memory: the pooled ``(n + m)^2`` distance matrix in float64.

    Args:
        x: ``(n, d)`` samples.
        y: ``(m, d)`` samples.
        permutations: random relabellings (``>= 1``).
        generator: draws the relabellings.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> t = energy_test(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1, generator=g)
        >>> t.p_value < 0.01
        True
    """
    if not (isinstance(permutations, int) and permutations >= 1):
        raise ValueError(f"permutations: expected an int >= 1, got {permutations!r}")
    for name, v in (("x", x), ("y", y)):
        if not (isinstance(v, Tensor) and v.ndim == 2 and v.shape[0] >= 2):
            raise ValueError(f"{name}: expected a (n, d) tensor with n >= 2, got {getattr(v, 'shape', type(v))}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has dimension {x.shape[1]} but y has dimension {y.shape[1]}")
    pooled = torch.cat([x, y]).detach().to(device="cpu", dtype=torch.float64)
    dist = torch.cdist(pooled, pooled)
    n, total = x.shape[0], pooled.shape[0]
    observed = torch.zeros(total, 1, dtype=torch.float64)
    observed[:n] = 1.0
    stat = float(_statistics(dist, observed)[0])
    exceed, done = 0, 0
    while done < permutations:  # blocks of relabellings: (N, P) label matrices
        p = min(64, permutations - done)
        keys = torch.rand(total, p, generator=generator, dtype=torch.float64)
        labels = (keys.argsort(0) < n).to(torch.float64)
        exceed += int((_statistics(dist, labels) >= stat * (1 - 1e-12)).sum())
        done += p
    return EnergyTest(stat, (1 + exceed) / (1 + permutations), permutations)


def test_points(n0: int, n1: int) -> int:
    """Held-out points per side for the test: ``min(TEST_POINTS, floor(TEST_SHARE * min(n0, n1)))``.

    Example:
        >>> test_points(10000, 20000), test_points(500, 500)
        (1000, 50)
    """
    return min(TEST_POINTS, int(TEST_SHARE * min(n0, n1)))


@dataclass(frozen=True)
class FamilySplit:
    """Training and held-out test points of each side (:func:`split_for_test`)."""

    x0: Tensor
    x1: Tensor
    test0: Tensor
    test1: Tensor


def split_for_test(x0: Tensor, x1: Tensor, seed: int) -> FamilySplit:
    """Hold out :func:`test_points` random rows of each side (drawn from ``seed + SEED_OFFSET``).

    Example:
        >>> s = split_for_test(torch.randn(2000, 3), torch.randn(1500, 3), seed=0)
        >>> s.x0.shape[0], s.test0.shape[0], s.x1.shape[0], s.test1.shape[0]
        (1850, 150, 1350, 150)
    """
    m = test_points(x0.shape[0], x1.shape[0])
    g = torch.Generator().manual_seed(seed + SEED_OFFSET)
    p0, p1 = torch.randperm(x0.shape[0], generator=g), torch.randperm(x1.shape[0], generator=g)
    p0, p1 = p0.to(x0.device), p1.to(x1.device)
    return FamilySplit(x0[p0[m:]], x1[p1[m:]], x0[p0[:m]], x1[p1[:m]])


def network_only(cfg: SBConfig, custom_interpolant: bool, n0: int, n1: int) -> str | None:
    """Why ``drift_family="auto"`` takes the network family without a test, or None.

    Example:
        >>> network_only(SBConfig(), False, 500, 500)
        'too few samples to test the mixture family (50 held-out points per side < 100; at least 1000 per side needed)'
        >>> network_only(SBConfig(), False, 5000, 5000) is None
        True
    """
    default_form = SBConfig.__dataclass_fields__["drift_form"].default
    if custom_interpolant:
        return "a custom interpolant was given (the mixture family keeps the Brownian bridge)"
    if cfg.interpolant != "fourier":
        return f"interpolant={cfg.interpolant!r} is learned by the network family's max-min only"
    if cfg.drift_form != default_form:
        return f"drift_form={cfg.drift_form!r} is a network form"
    if cfg.gradient_drift is True:
        return "gradient_drift=True asks for gradient networks"
    m = test_points(n0, n1)
    if m < MIN_TEST_POINTS:
        need = int(MIN_TEST_POINTS / TEST_SHARE)
        return (
            f"too few samples to test the mixture family ({m} held-out points per side < {MIN_TEST_POINTS}; "
            f"at least {need} per side needed)"
        )
    return None


def _held_out_test(model, split: FamilySplit, seed: int) -> EnergyTest:
    """:func:`energy_test` of one ``model.sample`` draw per held-out ``x0`` against the held-out ``x1``
    (both draws from ``seed + SEED_OFFSET``): the statistic that the trial and the comparison share."""
    g = torch.Generator(device=split.test0.device).manual_seed(seed + SEED_OFFSET)
    y = model.sample(split.test0, per_point=1, generator=g)[:, 0]
    return energy_test(y, split.test1, generator=torch.Generator().manual_seed(seed + SEED_OFFSET))


@torch.no_grad()
def mixture_test(potential, split: FamilySplit, seed: int) -> dict:
    """The trial's test: one exact ``x1`` per held-out ``x0`` against the held-out ``x1``.

    Returns the record that results keep (``BridgeResult.family``): ``family`` (``"mixture"`` when
    the p-value is at least :data:`TEST_LEVEL`, else ``"network"``), ``reason``, the test's
    ``energy_distance`` and ``p_value``, ``test_points``, and ``floor``: the energy distance
    between the held-out targets and as many training targets (two samples of ``rho1``), for scale.
    """
    test = _held_out_test(potential, split, seed)
    m = split.test1.shape[0]
    floor = energy_distance(split.x1[:m], split.test1)
    keep = test.p_value >= TEST_LEVEL
    verdict = "cannot tell" if keep else "tells"
    reason = (
        f"{'mixture' if keep else 'network'}: the energy test on {m} held-out points per side {verdict} the "
        f"mixture family's samples from the targets (p = {test.p_value:.3g}, level {TEST_LEVEL:g}; energy "
        f"distance {test.statistic:.4g}, two target samples {floor:.4g})"
    )
    return {
        "family": "mixture" if keep else "network",
        "reason": reason,
        "energy_distance": test.statistic,
        "floor": floor,
        "p_value": test.p_value,
        "level": TEST_LEVEL,
        "permutations": test.permutations,
        "test_points": m,
    }


def join_held_out(coupling: Coupling, split: FamilySplit) -> tuple[Coupling, int]:
    """After the test kept the mixture family: the coupling that also draws the held-out points, and
    how many joined per side. The independent coupling (the mixture family's ``"auto"`` choice)
    takes them; another coupling (a user's choice) keeps the training part, and 0 joined.

    Example:
        >>> s = split_for_test(torch.randn(2000, 3), torch.randn(2000, 3), seed=0)
        >>> c, k = join_held_out(IndependentPairs(s.x0, s.x1, torch.Generator()), s)
        >>> k, c.x0.shape[0], c.x1.shape[0]
        (200, 2000, 2000)
    """
    if type(coupling) is not IndependentPairs:
        return coupling, 0
    x0, x1 = torch.cat([coupling.x0, split.test0]), torch.cat([coupling.x1, split.test1])
    return IndependentPairs(x0, x1, coupling.gen), split.test0.shape[0]


def trial_path(checkpoint: Path) -> Path:
    """Where a rejected trial's mixture is kept beside ``checkpoint`` for :func:`compare_with_trial`.

    Example:
        >>> trial_path(Path("runs/a/state.pt")).as_posix()
        'runs/a/state.mixture-trial.pt'
    """
    return checkpoint.with_name(f"{checkpoint.stem}.mixture-trial{checkpoint.suffix}")


@torch.no_grad()
def compare_with_trial(network, record: dict, split: FamilySplit, seed: int) -> dict:
    """After a rejected trial and the network solve: which family is closer to the held-out targets.

    The network family's result ``network`` draws one ``x1`` for each held-out ``x0`` (its SDE,
    :meth:`~bridge.sb.BridgeResult.sample`), and :func:`energy_test` compares them with the held-out
    ``x1``, as :func:`mixture_test` did for the trial's mixture (``record``, its record). The family
    with the smaller energy distance wins: a rejected mixture is returned when the networks are
    further still, since on such data neither describes ``rho1`` and the mixture's coupling is the
    bridge to its own marginal (docs/math.md §5.15).

    Returns ``record`` with ``family`` the winner, ``compared`` (both energy distances and the
    network family's p-value) and a ``reason`` that says both.
    """
    test = _held_out_test(network, split, seed)
    mix, net = record["energy_distance"], test.statistic
    winner = "mixture" if mix < net else "network"
    reason = (
        f"{winner}: the energy test on {record['test_points']} held-out points per side told the mixture "
        f"family's samples from the targets (p = {record['p_value']:.3g}); after the network solve the "
        f"{winner} family is the closer of the two (energy distance {mix:.4g} for the mixture's trial, "
        f"{net:.4g} for the networks, p = {test.p_value:.3g})"
    )
    compared = {"mixture": mix, "network": net, "network_p_value": test.p_value}
    return record | {"family": winner, "reason": reason, "compared": compared}
