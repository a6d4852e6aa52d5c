"""The result of :func:`~bridge.sb.solve_bridge`: the learned coupling, drift and interpolant.

:meth:`BridgeResult.save` / :meth:`BridgeResult.load` store it as tensors plus JSON
(:mod:`bridge.checkpoint`): the networks are rebuilt from the saved configuration with
:func:`~bridge.sb.build_drift` and :func:`~bridge.sb.build_interpolant`, and
loading never unpickles objects.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..interpolants.base import Interpolant
from ..models import MLP
from ..samplers.steps import STEPS_TOL, StepChoice, choose_steps
from .config import SBConfig
from .drifts import TwoNetDrift, build_drift
from .interpolant import build_interpolant
from .potential import MixturePotential
from .sde import check_grid, compiled_drift, end_grid_sde, forward_sde, path_bytes, sde_times

__all__ = ["BridgeResult", "RESULT_KIND", "SAMPLE_METHODS", "end_grid_sde", "forward_sde", "sde_times"]

#: How :meth:`BridgeResult.sample` draws: ``"auto"``, ``"exact"`` (mixture potential), ``"sde"``.
SAMPLE_METHODS = ("auto", "exact", "sde")
#: ``meta["kind"]`` of a saved :class:`BridgeResult`.
RESULT_KIND = "bridge-result"


@dataclass
class BridgeResult:
    """A solved Schrödinger bridge (docs/math.md §5).

    Attributes:
        drift_net: the learned SB drift ``u(t, x)`` (``dX = u dt + sqrt(2 eps) dW``).
        interpolant: the learned interpolant (outer variable).
        eps: the paper's eps.
        history: per logged outer step: objective, kinetic-energy estimate, inner gap, wall time.
        steps, wall_s, stopped_by: outer steps taken, training wall time, "steps",
            "time_budget", "early_stop" or "family_trial" (``drift_family="auto"`` returned the
            mixture family's trial: see ``family``).
        config: the :class:`~bridge.sb.SBConfig` used, with its ``"auto"`` settings resolved.
        coupling: how the training pairs ``(x0, x1)`` were drawn (``solve_bridge``'s record).
        validation: with ``SBConfig.holdout > 0``: the held-out sizes, the validation curve
            (records of ``step``, ``val_loss``, ``best_val_loss``: the best state so far under
            the same interpolant, ``diff_se``: the standard error of their difference on the
            common validation pairs, ``wall_s``), ``best_step`` (the lowest held-out loss) and
            ``returned_step``, the outer step whose drift and interpolant these are (the last
            one unless ``best_step``'s is better by more than ``noise_z`` standard errors);
            empty otherwise.
        choices: why each ``"auto"`` setting was resolved as it was (``{setting: reason}``).
        family: with ``drift_family="auto"``, how the family was chosen (:mod:`bridge.sb.family`:
            ``family``, ``reason`` and, after the mixture family's trial, the test's
            ``p_value``, ``energy_distance``, ``floor``, ``test_points``, ``trial_steps``,
            ``trial_s``; when the test rejected the mixture, ``compared``: both families' energy
            distances to the held-out targets after the network solve); empty otherwise.
    """

    drift_net: nn.Module
    interpolant: Interpolant
    eps: float
    history: list = field(default_factory=list)
    steps: int = 0
    wall_s: float = 0.0
    stopped_by: str = "steps"
    config: SBConfig | None = None
    coupling: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)
    family: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """The data dimension ``d`` (of the drift's MLP)."""
        return _dimension(self.drift_net)

    def drift(self, t: Tensor, x: Tensor) -> Tensor:
        """The SB drift ``u(t, x)``."""
        return self.drift_net(t, x)

    def sample(
        self,
        x0: Tensor,
        *,
        per_point: int = 1,
        steps: int | str = "auto",
        generator: torch.Generator | None = None,
        trajectory: bool = False,
        grid: str = "end",
        progress=None,
        time: float = 1.0,
        method: str = "auto",
        max_bytes: int | None = None,
        compile: bool = False,
    ):
        """The learned coupling: ``per_point`` samples of ``X_time`` (default ``x1``) for each row of ``x0``.

        ``method`` (:data:`SAMPLE_METHODS`, resolved by :meth:`sampling_method`): ``"exact"`` draws
        from the closed-form law of the SDE with a mixture-potential drift
        (:meth:`~bridge.sb.MixturePotential.sample` / ``sample_at``; docs/math.md §5.10: the law of
        its own SB from ``x0``, whatever the interpolant); ``"sde"`` integrates the SDE as below;
        ``"auto"`` is ``"exact"`` for the mixture family (unless ``trajectory``) and ``"sde"`` otherwise.

        Integrates ``dX = u dt + sqrt(2 eps) dW`` from ``t = 0`` to 1 with Heun's method (docs/math.md §3).

        The SB drift is stiff near ``t = 1`` (it pulls ``x`` onto ``x1`` like ``(x1 - x)/(1 - t)``;
        in the learned drift ``c = gamma_dot - eps/gamma`` grows like ``(1 - t)^{-1/2}``), so by
        default (``grid="end"``) the steps are uniform in ``s`` with ``t = 1 - (1 - s)^2``: the
        SDE is integrated as ``dX = u(t(s), X) t'(s) ds + sqrt(2 eps t'(s)) dW_s``, an exact change
        of time, with steps of ``dt = 2(1 - s) ds`` that shrink towards ``t = 1``. ``grid="uniform"``
        takes uniform steps in ``t``; benchmarks/README.md compares the two.

        With ``time = T < 1`` the SDE runs from 0 to ``T`` on the grid scaled to end at ``T``
        (:func:`sde_times` ``(steps, grid, T)``), exact in law.

        Args:
            steps: SDE steps, or ``"auto"`` (the default): the count :meth:`choose_steps` picks
                from a pilot batch of ``x0`` (drawn from ``generator`` first); its reason is
                recorded in ``choices["sample_steps"]``.
            grid: ``"end"`` or ``"uniform"``.
            time: the time ``T`` in (0, 1] of the samples.
            method: ``"auto"``, ``"exact"`` or ``"sde"``.
            progress: optional callback ``(steps done, steps)`` after each SDE step
                (:func:`bridge.samplers.sample_sde`), counted over all chunks; the draws are the
                same with or without it.
            max_bytes: optional memory budget: the paths are integrated in chunks of at most this
                many bytes of working memory (:func:`~bridge.sb.sde.path_bytes`), one after the
                other with the same generator (so the draws differ from one chunk's). None: one chunk.
            compile: run the drift through :func:`torch.compile` (:func:`~bridge.sb.sde.compiled_drift`);
                off by default: on a CPU the compile time rarely pays (benchmarks/README.md §16).

        Returns:
            ``(n, per_point, d)`` tensor (and the trajectory ``(steps+1, n, per_point, d)`` when
            ``trajectory``, at the times :func:`sde_times` ``(steps, grid)``).
        """
        if not isinstance(per_point, int) or per_point < 1:
            raise ValueError(f"per_point: expected a positive int, got {per_point!r}")
        check_grid(grid)
        time = _check_time(time)
        if self.sampling_method(method, trajectory=trajectory) == "exact":
            pot = self.drift_net
            if time == 1.0:
                return pot.sample(x0, per_point, generator=generator)
            return pot.sample_at(time, x0, per_point, generator=generator)
        drift = compiled_drift(self.drift_net) if compile else self.drift
        steps = self._resolve_steps(steps, x0, generator=generator, grid=grid, time=time, drift=drift)
        n, d = x0.shape
        x = x0.repeat_interleave(per_point, dim=0)
        size = _chunk_paths(max_bytes, path_bytes(self.drift_net, d, x.dtype, trajectory_steps=steps * trajectory))
        chunks = range(0, x.shape[0], size)
        ends, trajs = [], []
        for c, i in enumerate(chunks):
            report = None if progress is None else _chunk_progress(progress, c, len(chunks))
            res = forward_sde(
                drift, self.eps, x[i : i + size], steps=steps, generator=generator, grid=grid,
                trajectory=trajectory, progress=report, end=time,
            )  # fmt: skip
            ends.append(res.x)
            trajs.append(res.trajectory)
        out = torch.cat(ends).reshape(n, per_point, d)
        if trajectory:
            return out, torch.cat(trajs, dim=1).reshape(-1, n, per_point, d)
        return out

    def choose_steps(
        self,
        x0: Tensor,
        *,
        tol: float = STEPS_TOL,
        generator: torch.Generator | None = None,
        grid: str = "end",
        time: float = 1.0,
        drift=None,
    ) -> StepChoice:
        """The SDE step count for :meth:`sample` from a measured error: :func:`bridge.samplers.choose_steps`
        on a pilot batch from the rows of ``x0`` (``100 tol`` bounds, in cBW2-UVP percent, how far
        the chosen count's samples are from twice as many steps').

        Example:
            >>> # res.choose_steps(x0).steps  # e.g. 64; .reason says why
        """
        check_grid(grid)
        time = _check_time(time)
        f = self.drift if drift is None else drift

        def run(x, n, xi):
            return forward_sde(f, self.eps, x, steps=n, noise=xi, grid=grid, end=time).x

        return choose_steps(run, x0, tol=tol, generator=generator)

    def _resolve_steps(self, steps, x0, **kw) -> int:
        """``steps`` as a count: an int >= 1 as given, ``"auto"`` by :meth:`choose_steps` (recorded)."""
        if steps == "auto":
            choice = self.choose_steps(x0, **kw)
            self.choices["sample_steps"] = choice.reason
            return choice.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: expected a positive int or 'auto', got {steps!r}")
        return steps

    def sampling_method(self, method: str = "auto", *, trajectory: bool = False) -> str:
        """What :meth:`sample` does with ``method``: ``"exact"`` (a mixture-potential drift, no
        ``trajectory``) or ``"sde"``.

        Example:
            >>> # res.sampling_method()  # 'exact' for drift_family='mixture', else 'sde'
        """
        if method not in SAMPLE_METHODS:
            raise ValueError(f"method: expected one of {', '.join(SAMPLE_METHODS)}, got {method!r}")
        exact = isinstance(self.drift_net, MixturePotential)
        if method == "exact" and not exact:
            raise ValueError("method: 'exact' needs a mixture-potential drift (drift_family='mixture')")
        if method == "exact" and trajectory:
            raise ValueError("method: 'exact' draws no trajectory; use method='sde' with trajectory=True")
        return "exact" if exact and method != "sde" and not trajectory else "sde"

    def coefficient_curves(self, t: Tensor) -> dict[str, Tensor]:
        """alpha, beta, gamma of the learned interpolant on the times ``t`` (spatially linear ones)."""
        it = self.interpolant
        with torch.no_grad():
            out = {"t": t, "gamma": it.gamma(t)}
            if hasattr(it, "alpha"):
                out.update(alpha=it.alpha(t), beta=it.beta(t))
        return out

    def config_dict(self) -> dict:
        return asdict(self.config) if self.config is not None else {}

    def save(self, path) -> None:
        """Write the result to ``path`` atomically: network weights as tensors, the rest as JSON.

        Stored: the state dicts of ``drift_net`` and ``interpolant``, ``eps``, the dimension,
        ``config`` (as a dict), ``history``, ``steps``, ``wall_s``, ``stopped_by``,
        ``coupling`` and ``validation``. Only results whose networks :meth:`load` can rebuild from the config
        (the default ones of :func:`~bridge.sb.solve_bridge`) are accepted.

        Raises:
            ValueError: no config, or a drift / interpolant that the config does not describe
                (e.g. a custom interpolant passed to ``solve_bridge``).

        Example:
            >>> # result.save("runs/sb/bridge.pt"); BridgeResult.load("runs/sb/bridge.pt")
        """
        if not isinstance(self.config, SBConfig):
            raise ValueError(f"config: expected an SBConfig to save with, got {type(self.config).__name__}")
        d = self.dim
        state = {"drift": self.drift_net.state_dict(), "interpolant": self.interpolant.state_dict()}
        drift, interp = _rebuild(self.config, d, float(self.eps))
        for name, built in (("drift", drift), ("interpolant", interp)):
            if not _same_layout(built.state_dict(), state[name]) or (
                name == "interpolant" and type(built) is not type(self.interpolant)
            ):
                raise ValueError(
                    f"{name}: not the network that build_{name}(config, d, ...) makes, so it could not be "
                    "reloaded; save() supports results of solve_bridge with its default networks"
                )
        meta = {
            "kind": RESULT_KIND,
            "eps": float(self.eps),
            "dim": d,
            "dtype": str(next(iter(self.drift_net.parameters())).dtype).removeprefix("torch."),
            "config": asdict(self.config),
            "history": self.history,
            "steps": int(self.steps),
            "wall_s": float(self.wall_s),
            "stopped_by": self.stopped_by,
            "coupling": self.coupling,
            "validation": self.validation,
            "choices": self.choices,
            "family": self.family,
        }
        save_checkpoint(path, state, meta)

    @classmethod
    def load(cls, path, *, map_location="cpu") -> BridgeResult:
        """Read a result written by :meth:`save` (tensors and JSON only; nothing is unpickled).

        The config is rebuilt as an :class:`~bridge.sb.SBConfig` (keys it does not know
        are ignored) and the networks with :func:`~bridge.sb.build_drift` and
        :func:`~bridge.sb.build_interpolant`; the drift is returned in eval mode.

        Raises:
            bridge.checkpoint.CheckpointError: missing, unsafe or corrupt file, not a saved
                result, or weights that do not fit the saved configuration.

        Example:
            >>> # res = BridgeResult.load("runs/sb/bridge.pt"); res.sample(x0, per_point=10)
        """
        state, meta = load_checkpoint(path, map_location=map_location)
        if meta.get("kind") != RESULT_KIND:
            raise CheckpointError(f"{path}: not a saved bridge result (kind={meta.get('kind')!r})")
        try:
            eps, d = float(meta["eps"]), int(meta["dim"])
            cfg = SBConfig.from_dict(meta["config"])
            dtype = getattr(torch, str(meta.get("dtype", "float32")))
            if not (math.isfinite(eps) and eps > 0 and d >= 1 and isinstance(dtype, torch.dtype)):
                raise ValueError
            drift, interp = _rebuild(cfg, d, eps)
            drift = drift.to(dtype=dtype)
            if hasattr(interp, "net"):  # the neural interpolant's N_phi was trained in the data's dtype
                interp.net.to(dtype=dtype)
            drift.load_state_dict(state["drift"])
            interp.load_state_dict(state["interpolant"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError):
            raise CheckpointError(f"{path}: saved weights or settings do not fit a bridge result") from None
        return cls(
            drift_net=drift.to(map_location).eval(),
            interpolant=interp.to(map_location),
            eps=eps,
            history=list(meta.get("history", [])),
            steps=int(meta.get("steps", 0)),
            wall_s=float(meta.get("wall_s", 0.0)),
            stopped_by=str(meta.get("stopped_by", "steps")),
            config=cfg,
            coupling=dict(meta.get("coupling") or {}),
            validation=dict(meta.get("validation") or {}),
            choices=dict(meta.get("choices") or {}),
            family=dict(meta.get("family") or {}),
        )


def _dimension(net: nn.Module) -> int:
    """Data dimension of a drift built by ``build_drift``: the MLP inside it (possibly wrapped,
    e.g. the endpoint form) records it in its ``config``; a mixture potential has it as ``dim``."""
    if isinstance(net, MixturePotential):
        return int(net.dim)
    for m in net.modules():
        if isinstance(m, MLP):
            return int(m.config["dim"])
    raise ValueError(f"drift_net: expected a network made by build_drift (an MLP inside), got {type(net).__name__}")


def _rebuild(cfg, d: int, eps: float):
    drift, interp = build_drift(cfg, d, eps=eps), build_interpolant(cfg, d, eps)
    if isinstance(drift, TwoNetDrift):  # the two-network form reads gamma from the interpolant
        drift.bind(interp, eps)
    return drift, interp


def _chunk_paths(max_bytes, per_path: int) -> int:
    """Paths per chunk within ``max_bytes`` (at least one); no budget: all at once."""
    if max_bytes is None:
        return 2**62
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes: expected a positive int or None, got {max_bytes!r}")
    return max(1, max_bytes // max(per_path, 1))


def _chunk_progress(progress, c: int, chunks: int):
    """Chunk ``c``'s ``(step, steps)`` as ``(c steps + step, chunks steps)`` of the whole."""
    return lambda k, steps: progress(c * steps + k, chunks * steps)


def _check_time(time) -> float:
    if isinstance(time, bool) or not isinstance(time, int | float) or not 0.0 < time <= 1.0:
        raise ValueError(f"time: expected a number in (0, 1], got {time!r}")
    return float(time)


def _same_layout(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
