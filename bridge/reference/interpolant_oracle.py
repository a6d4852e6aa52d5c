r"""Exact fields of a spatially linear interpolant between two Gaussian mixtures (docs/math.md §7, SI App. A).

With ``x0 ~ rho0 = sum_i p_i N(m0_i, C0_i)``, ``x1 ~ rho1 = sum_j q_j N(m1_j, C1_j)`` and ``z``
drawn independently, ``x_t = A x0 + B x1 + gamma z`` with ``A = diag(alpha(t))``,
``B = diag(beta(t))`` (scalar coefficients are multiples of the identity). Given the pair of
components ``k = (i, j)`` everything is jointly Gaussian, so

.. math::

    \rho(t) = \sum_{ij} p_i q_j\, \mathcal N(m_{ij}(t), C_{ij}(t)),\qquad
    m_{ij} = A m_{0i} + B m_{1j},\qquad C_{ij} = A C_{0i} A + B C_{1j} B + \gamma^2 I,

and for any ``W`` jointly Gaussian with ``x_t``,

.. math::

    \mathbb E[W \mid x_t = x] = \sum_k w_k(x)\Big(\mathbb E[W \mid k]
        + \mathrm{Cov}(W, x_t \mid k)\, C_k^{-1}(x - m_k)\Big),\qquad
    w_k(x) \propto p_i q_j\, \mathcal N(x; m_k, C_k).

That gives the posterior means ``E[x0 | x_t] = sum_k w_k (m0_i + C0_i A C_k^{-1}(x - m_k))`` and
likewise for ``x1``, hence (SI 2.10, 2.14, 2.17, 2.27)

* ``v = Adot E[x0 | x] + Bdot E[x1 | x]``,
* ``s = -sum_k w_k C_k^{-1}(x - m_k)``,
* ``b = v - gamma gamma_dot s`` (the ``z`` part has ``Cov(gamma_dot z, x_t) = gamma gamma_dot I``),
* ``eta = E[z | x] = -gamma s`` (two-sided, mirror) or ``E[x0 | x]`` (one-sided, SI 4.19-4.20).

Example:
    >>> import torch
    >>> from bridge.interpolants import Linear
    >>> from bridge.reference import InterpolantOracle, gaussian
    >>> oracle = InterpolantOracle(Linear(), gaussian([0.0], 1.0), gaussian([2.0], 1.0))
    >>> oracle.marginal(0.5).mean()
    tensor([1.], dtype=torch.float64)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..fields import Fields
from ..interpolants.base import SpatiallyLinearInterpolant
from .mixture import GaussianMixture, _check_points

__all__ = ["InterpolantOracle"]

_LOG_2PI = math.log(2.0 * math.pi)

#: Default memory budget of one chunk (number of tensor entries, 32 MiB in float64); rows are
#: processed in chunks so that a (rows, K, d, d) tensor stays below it.
DEFAULT_CHUNK_ELEMENTS = 2**22
#: Rows are grouped by time (one factorisation per distinct time, solved for all its rows at once)
#: when there are at least this many rows per distinct time on average; otherwise each row gets
#: its own batched factorisation, which avoids a Python loop over many distinct times.
ROWS_PER_TIME = 8


def _is_diagonal(c: Tensor) -> bool:
    return bool((c - torch.diag_embed(torch.diagonal(c, dim1=-2, dim2=-1)) == 0).all())


class InterpolantOracle:
    r"""Exact fields of a spatially linear interpolant with independent coupling between two
    Gaussian mixtures (docs/math.md §7, SI App. A).

    .. math::

        x_t = \alpha(t) x_0 + \beta(t) x_1 + \gamma(t) z,\qquad
        x_0 \sim \rho_0,\ x_1 \sim \rho_1,\ z \sim \mathcal N(0, I) \text{ independent.}

    Gives the marginal :math:`\rho(t)` (a mixture of ``K0 * K1`` Gaussians, or ``K1`` for the
    mirror interpolant, which ignores ``rho0``) and the fields ``b``, ``v``, ``s``, ``eta`` and
    ``log rho(t, x)``, all differentiable in ``x`` and (through the schedules) in ``t``.
    ``alpha`` and ``beta`` may be per-dimension (``t.shape + (d,)``); ``A = diag(alpha)``.

    ``t`` may differ from row to row. With few distinct times (a sampler's batch) each time gets
    one Cholesky factorisation per component, solved for all its rows at once; with many (a
    loss batch) every row gets its own, batched. Rows are processed in chunks under a memory
    budget.
    When every covariance is diagonal the whole computation is elementwise.

    Limitations: :math:`C_k(t)` is singular only where ``alpha``, ``beta`` and ``gamma`` vanish
    together (in some dimension), which no interpolant of docs/math.md §1 does on [0, 1]; the methods then
    raise ValueError. Near such points, or when a component covariance is tiny, ``C_k(t)`` is
    ill conditioned and float32 loses accuracy. ``gamma_dot`` never enters (only the closed-form
    ``gamma * gamma_dot``, finite at the ends), but a singular ``alpha_dot`` or ``beta_dot``
    (``OneSidedVP`` at t = 1) makes ``b`` and ``v`` infinite there.

    Args:
        interp: a :class:`~bridge.interpolants.SpatiallyLinearInterpolant`. For a one-sided
            interpolant ``rho0`` must be the standard normal (the noise ``x0``).
        rho0, rho1: endpoint mixtures of the same dimension.
        chunk_elements: memory budget per chunk, in tensor entries.

    Example:
        >>> import torch
        >>> from bridge.interpolants import Trig
        >>> from bridge.reference import gaussian, standard_normal
        >>> oracle = InterpolantOracle(Trig(), standard_normal(2), gaussian([1.0, -1.0], 0.5))
        >>> t, x = torch.full((4,), 0.3, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)
        >>> oracle.b(t, x).shape, oracle.log_density(t, x).shape
        (torch.Size([4, 2]), torch.Size([4]))
    """

    def __init__(
        self,
        interp: SpatiallyLinearInterpolant,
        rho0: GaussianMixture,
        rho1: GaussianMixture,
        *,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ):
        if not isinstance(interp, SpatiallyLinearInterpolant):
            raise TypeError(f"interp: expected a SpatiallyLinearInterpolant, got {type(interp).__name__}")
        for name, rho in (("rho0", rho0), ("rho1", rho1)):
            if not isinstance(rho, GaussianMixture):
                raise TypeError(f"{name}: expected a GaussianMixture, got {type(rho).__name__}")
        if rho0.dim != rho1.dim:
            raise ValueError(f"rho0, rho1: dimensions differ, {rho0.dim} vs {rho1.dim}")
        if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int) or chunk_elements < 1:
            raise ValueError(f"chunk_elements: expected a positive int, got {chunk_elements!r}")
        if interp.one_sided:
            d, c = rho0.dim, rho0.covs
            tol = 10 * torch.finfo(c.dtype).eps
            eye = torch.eye(d, dtype=c.dtype, device=c.device)
            if rho0.n_components != 1 or rho0.means.abs().max() > tol or (c[0] - eye).abs().max() > tol:
                raise ValueError(
                    "rho0: a one-sided interpolant needs rho0 = N(0, I) (x0 is its noise, SI 4.19); "
                    "use bridge.reference.standard_normal(d)"
                )
        self.interp, self.rho0, self.rho1 = interp, rho0, rho1
        self.chunk_elements = chunk_elements
        # the mirror interpolant has alpha = 0: rho0 drops out, keep one dummy component
        self._k0 = 1 if interp.mirror else rho0.n_components
        # (the mirror's dummy rho0 component is multiplied by alpha = 0, its shape is irrelevant)
        self.diagonal = (interp.mirror or _is_diagonal(rho0.covs)) and _is_diagonal(rho1.covs)
        self._cache: dict = {}

    # -- bookkeeping -----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.rho1.dim

    @property
    def n_components(self) -> int:
        """Number of components of ``rho(t)``: ``K0 * K1`` (``K1`` for the mirror)."""
        return self._k0 * self.rho1.n_components

    @property
    def has_denoiser(self) -> bool:
        """Whether ``eta`` is defined: latent noise (gamma > 0) or a one-sided interpolant."""
        return self.interp.one_sided or self.interp.has_latent_noise

    def _params(self, dtype, device):
        key = (dtype, device)
        if key not in self._cache:
            k0, r0, r1 = self._k0, self.rho0, self.rho1
            cv = lambda p: p.to(dtype=dtype, device=device)  # noqa: E731
            w0 = torch.ones(1, dtype=dtype, device=device) if self.interp.mirror else cv(r0.weights)
            log_w = (torch.log(w0)[:, None] + torch.log(cv(r1.weights))[None, :]).reshape(-1)
            c0, c1 = cv(r0.covs[:k0]), cv(r1.covs)
            if self.diagonal:
                c0, c1 = torch.diagonal(c0, dim1=-2, dim2=-1), torch.diagonal(c1, dim1=-2, dim2=-1)
            self._cache[key] = dict(log_w=log_w, m0=cv(r0.means[:k0]), m1=cv(r1.means), c0=c0, c1=c1)
        return self._cache[key]

    def _as_times(self, t, x: Tensor) -> Tensor:
        n = x.shape[0]
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            t = torch.full((n,), float(t), dtype=x.dtype, device=x.device)
        if not isinstance(t, Tensor):
            raise TypeError(f"t: expected a tensor of shape ({n},) or a number, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"t: expected a floating-point tensor, got {t.dtype}")
        t = t.to(dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(n)
        elif t.dim() == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.shape != (n,):
            raise ValueError(f"t: expected shape ({n},) to match x, got {tuple(t.shape)}")
        if not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError("t: expected times in [0, 1]")
        return t

    def _coef(self, c, t: Tensor, name: str) -> Tensor:
        """A schedule value as a ``(U, d)`` tensor (scalar coefficients are broadcast)."""
        U, d = t.shape[0], self.dim
        if not isinstance(c, Tensor):
            c = t.new_tensor(float(c))
        c = c.to(t.dtype)
        if c.dim() == 0:
            return c.expand(U, d)
        if c.shape == t.shape:
            return c.unsqueeze(-1).expand(U, d)
        if c.shape == (U, d):
            return c
        raise ValueError(f"interp: {name}(t) has shape {tuple(c.shape)}; expected ({U},) or ({U}, {d})")

    # -- per-time statistics -----------------------------------------------------------------
    def _covariances(self, a: Tensor, b: Tensor, g: Tensor, P: dict) -> Tensor:
        """``C_ij = A C0_i A + B C1_j B + gamma^2 I``: ``(U, K, d, d)``, or the diagonals ``(U, K, d)``."""
        U, d = a.shape
        if self.diagonal:
            c = (
                (a * a)[:, None, None, :] * P["c0"][None, :, None, :]
                + (b * b)[:, None, None, :] * P["c1"][None, None, :, :]
                + (g * g)[:, None, None, :]
            )
            return c.reshape(U, -1, d)
        c = (
            P["c0"][None, :, None] * (a[:, :, None] * a[:, None, :])[:, None, None]
            + P["c1"][None, None, :] * (b[:, :, None] * b[:, None, :])[:, None, None]
            + torch.diag_embed(g * g)[:, None, None]
        )
        return c.reshape(U, -1, d, d)

    def _stats(self, tu: Tensor, P: dict, need: set) -> dict:
        it = self.interp
        st = {
            "a": self._coef(it.alpha(tu), tu, "alpha"),
            "b": self._coef(it.beta(tu), tu, "beta"),
            "g": self._coef(it.gamma(tu), tu, "gamma"),
        }
        if need & {"v", "b"}:
            st["ad"] = self._coef(it.alpha_dot(tu), tu, "alpha_dot")
            st["bd"] = self._coef(it.beta_dot(tu), tu, "beta_dot")
        if "b" in need:
            st["ggd"] = self._coef(it.gamma_gamma_dot(tu), tu, "gamma_gamma_dot")
        a, b, g = st["a"], st["b"], st["g"]
        U, d = tu.shape[0], self.dim
        m = a[:, None, None, :] * P["m0"][None, :, None, :] + b[:, None, None, :] * P["m1"][None, None, :, :]
        st["m"] = m.reshape(U, -1, d)
        c = self._covariances(a, b, g, P)
        if self.diagonal:
            bad = ~(c > 0).all(-1)
            st["c"] = c
            st["logdet"] = torch.log(c).sum(-1)
        else:
            L, info = torch.linalg.cholesky_ex(c)
            bad = info != 0
            st["L"] = L
            st["logdet"] = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        if bool(bad.any()):
            u = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"t: the covariance of rho(t) is singular (or not positive definite) at "
                f"t = {float(tu[u]):.6g}; alpha, beta and gamma vanish together there"
            )
        return st

    def _rows(self, x: Tensor, st: dict, need: set, P: dict) -> dict:
        """Fields at rows ``x`` (R, d). ``st`` holds per-row statistics (leading dim R) or those of
        one time shared by all rows (leading dim 1, broadcast)."""
        R, d = x.shape
        k0, k1 = P["m0"].shape[0], P["m1"].shape[0]
        diff = x[:, None, :] - st["m"]  # (R, K, d)
        if self.diagonal:
            sol = diff / st["c"]
            maha = (diff * sol).sum(-1)
        elif st["L"].shape[0] == R:  # one factorisation per row
            L = st["L"]
            y = torch.linalg.solve_triangular(L, diff.unsqueeze(-1), upper=False)
            sol = torch.linalg.solve_triangular(L.mT, y, upper=True).squeeze(-1)
            maha = y.squeeze(-1).pow(2).sum(-1)
        else:  # one time for all rows: K triangular solves with R right-hand sides each
            L = st["L"][0]
            y = torch.linalg.solve_triangular(L, diff.permute(1, 2, 0).contiguous(), upper=False)  # (K, d, R)
            sol = torch.linalg.solve_triangular(L.mT, y, upper=True).permute(2, 0, 1)
            maha = y.pow(2).sum(1).T
        log_comp = P["log_w"] - 0.5 * (maha + st["logdet"] + d * _LOG_2PI)  # (R, K)
        out = {}
        if "logp" in need:
            out["logp"] = torch.logsumexp(log_comp, dim=-1)
        if not need - {"logp"}:
            return out
        resp = torch.softmax(log_comp, dim=-1)
        rs = resp.unsqueeze(-1) * sol  # w_k C_k^{-1}(x - m_k), (R, K, d)
        ws = rs.sum(1)  # = -s
        if "s" in need:
            out["s"] = -ws
        if "eta" in need and not self.interp.one_sided:
            out["eta"] = st["g"] * ws
        if need & {"v", "b"} or ("eta" in need and self.interp.one_sided):
            r, rs = resp.reshape(R, k0, k1), rs.reshape(R, k0, k1, d)
            # E[x0 | x] = sum_i r_i m0_i + sum_i C0_i A sum_j w_ij C_ij^{-1}(x - m_ij), r_i = sum_j w_ij
            y0 = st["a"][:, None, :] * rs.sum(2)
            # sum_i C0_i y0_i as one GEMM: C0_i is symmetric, stack its rows as (k0 d, d)
            t0 = (P["c0"] * y0).sum(1) if self.diagonal else y0.reshape(R, -1) @ P["c0"].reshape(-1, d)
            ex0 = r.sum(2) @ P["m0"] + t0
            if "eta" in need and self.interp.one_sided:
                out["eta"] = ex0
            if need & {"v", "b"}:
                y1 = st["b"][:, None, :] * rs.sum(1)
                t1 = (P["c1"] * y1).sum(1) if self.diagonal else y1.reshape(R, -1) @ P["c1"].reshape(-1, d)
                ex1 = r.sum(1) @ P["m1"] + t1
                v = st["ad"] * ex0 + st["bd"] * ex1
                if "v" in need:
                    out["v"] = v
                if "b" in need:
                    out["b"] = v + st["ggd"] * ws
        return out

    def _evaluate(self, t, x, need: set) -> dict:
        x = _check_points(x, self.dim)
        t = self._as_times(t, x)
        P = self._params(x.dtype, x.device)
        n, d, K = x.shape[0], self.dim, self.n_components
        pieces: dict = {key: [] for key in need}
        if not (self.diagonal or t.requires_grad or n <= 1):
            uniq, inv, counts = torch.unique(t, return_inverse=True, return_counts=True)
            shared = n >= ROWS_PER_TIME * uniq.shape[0]
        else:
            shared = False
        if not shared:
            # per-row statistics (diagonal covariances, distinct times, or t carrying a gradient)
            cap = max(1, self.chunk_elements // (K * d if self.diagonal else K * d * d))
            for r0 in range(0, n, cap):
                st = self._stats(t[r0 : r0 + cap], P, need)
                for key, val in self._rows(x[r0 : r0 + cap], st, need, P).items():
                    pieces[key].append(val)
            return {key: torch.cat(val) for key, val in pieces.items()}
        # few distinct times: factorise C_k(t) once per time, solve for all its rows at once
        cap = max(1, self.chunk_elements // (K * d))
        if uniq.shape[0] == 1:
            groups = [torch.arange(n, device=x.device)]
        else:
            groups = torch.split(torch.sort(inv).indices, counts.tolist())
        perm = []
        for u, rows_all in enumerate(groups):
            st = self._stats(uniq[u : u + 1], P, need)
            for r0 in range(0, rows_all.shape[0], cap):
                rows = rows_all[r0 : r0 + cap]
                perm.append(rows)
                for key, val in self._rows(x[rows], st, need, P).items():
                    pieces[key].append(val)
        if len(perm) == 1:
            return {key: val[0] for key, val in pieces.items()}
        perm = torch.cat(perm)
        out = {}
        for key, val in pieces.items():
            val = torch.cat(val)
            out[key] = val.new_empty(val.shape).index_copy(0, perm, val)
        return out

    # -- public fields ---------------------------------------------------------------------
    def marginal(self, t: float) -> GaussianMixture:
        r"""The law of :math:`x_t`: :math:`\sum_{ij} p_i q_j \mathcal N(A m_{0i} + B m_{1j},
        A C_{0i} A + B C_{1j} B + \gamma^2 I)` (SI App. A), in the dtype of ``rho1``.

        Args:
            t: a time in [0, 1] (number or 0-dim tensor).

        Returns:
            A :class:`GaussianMixture` with ``K0 * K1`` components (``K1`` for the mirror).

        Example:
            >>> from bridge.interpolants import Linear
            >>> from bridge.reference import gaussian
            >>> InterpolantOracle(Linear(), gaussian([0.0], 1.0), gaussian([2.0], 1.0)).marginal(1.0).cov()
            tensor([[1.]], dtype=torch.float64)
        """
        if isinstance(t, Tensor):
            if t.numel() != 1:
                raise ValueError(f"t: expected a single time, got shape {tuple(t.shape)}")
            t = float(t)
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"t: expected a number in [0, 1], got {type(t).__name__}")
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t: expected a time in [0, 1], got {t}")
        ref = self.rho1.means
        P = self._params(ref.dtype, ref.device)
        st = self._stats(ref.new_full((1,), float(t)), P, set())  # raises where C_k(t) is singular
        covs = self._covariances(st["a"], st["b"], st["g"], P)[0]
        if self.diagonal:
            covs = torch.diag_embed(covs)
        return GaussianMixture(torch.softmax(P["log_w"], dim=0), st["m"][0], covs)

    def log_density(self, t, x: Tensor) -> Tensor:
        r""":math:`\log\rho(t, x) = \operatorname{logsumexp}_k[\log p_i q_j + \log\mathcal N(x; m_k(t), C_k(t))]`.

        Args:
            t: ``(n,)`` (may vary per row) or a number; x: ``(n, d)``.

        Returns:
            ``(n,)``, differentiable in ``x`` and in ``t``.

        Example:
            >>> from bridge.interpolants import Linear
            >>> from bridge.reference import standard_normal
            >>> o = InterpolantOracle(Linear(), standard_normal(1), standard_normal(1))
            >>> o.log_density(0.0, torch.zeros(1, 1, dtype=torch.float64))
            tensor([-0.9189], dtype=torch.float64)
        """
        return self._evaluate(t, x, {"logp"})["logp"]

    def s(self, t, x: Tensor) -> Tensor:
        r"""Score :math:`s = \nabla\log\rho(t,x) = -\sum_k w_k(x) C_k^{-1}(x - m_k)` (SI 2.14).

        Example:
            >>> from bridge.interpolants import Linear
            >>> from bridge.reference import standard_normal
            >>> o = InterpolantOracle(Linear(), standard_normal(1), standard_normal(1))
            >>> o.s(0.0, torch.ones(1, 1, dtype=torch.float64))
            tensor([[-1.]], dtype=torch.float64)
        """
        return self._evaluate(t, x, {"s"})["s"]

    def v(self, t, x: Tensor) -> Tensor:
        r"""Velocity :math:`v = \mathbb E[\partial_t I \mid x_t = x] = \dot A\,\mathbb E[x_0\mid x]
        + \dot B\,\mathbb E[x_1 \mid x]` (SI 2.27).

        Example:
            >>> from bridge.interpolants import Linear
            >>> from bridge.reference import gaussian
            >>> o = InterpolantOracle(Linear(), gaussian([0.0], 1.0), gaussian([2.0], 1.0))
            >>> o.v(0.5, torch.ones(1, 1, dtype=torch.float64))
            tensor([[2.]], dtype=torch.float64)
        """
        return self._evaluate(t, x, {"v"})["v"]

    def b(self, t, x: Tensor) -> Tensor:
        r"""Drift :math:`b = \mathbb E[\partial_t I + \dot\gamma z \mid x_t = x] = v - \gamma\dot\gamma\, s`
        (SI 2.10, 2.27), with :math:`\gamma\dot\gamma` in closed form (finite at the ends).

        Example:
            >>> from bridge.interpolants import Linear
            >>> from bridge.reference import gaussian
            >>> o = InterpolantOracle(Linear(), gaussian([0.0], 1.0), gaussian([2.0], 1.0))
            >>> o.b(0.5, torch.ones(1, 1, dtype=torch.float64))
            tensor([[2.]], dtype=torch.float64)
        """
        return self._evaluate(t, x, {"b"})["b"]

    def eta(self, t, x: Tensor) -> Tensor:
        r"""Denoiser :math:`\eta = \mathbb E[\text{noise} \mid x_t = x]` (SI 2.17; our sign is the
        paper's ``+E[z | x_t]``): :math:`-\gamma s` for two-sided and mirror interpolants,
        :math:`\mathbb E[x_0 \mid x_t = x] = -\alpha s` for one-sided ones (SI 4.20).

        Raises:
            ValueError: a two-sided interpolant with ``gamma = 0`` has no noise to denoise.

        Example:
            >>> from bridge.interpolants import OneSidedLinear
            >>> from bridge.reference import standard_normal
            >>> o = InterpolantOracle(OneSidedLinear(), standard_normal(1), standard_normal(1))
            >>> o.eta(0.0, torch.ones(1, 1, dtype=torch.float64))
            tensor([[1.]], dtype=torch.float64)
        """
        if not self.has_denoiser:
            raise ValueError(
                "interp: eta needs latent noise (gamma > 0) or a one-sided interpolant; this interpolant has gamma = 0"
            )
        return self._evaluate(t, x, {"eta"})["eta"]

    def fields(self) -> Fields:
        """The exact fields bundled for samplers: ``Fields(interp, b, s, v, eta, x1_mean)``
        (``eta`` is None where it is undefined, see :meth:`eta`).

        Example:
            >>> from bridge.interpolants import Linear
            >>> from bridge.reference import standard_normal
            >>> f = InterpolantOracle(Linear(), standard_normal(2), standard_normal(2)).fields()
            >>> f.drift(torch.full((3,), 0.5, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)).shape
            torch.Size([3, 2])
        """
        return Fields(
            self.interp,
            b=self.b,
            s=self.s,
            v=self.v,
            eta=self.eta if self.has_denoiser else None,
            x1_mean=self.rho1.mean(),
        )

    def __repr__(self):
        return (
            f"InterpolantOracle({self.interp!r}, rho0: K={self.rho0.n_components}, "
            f"rho1: K={self.rho1.n_components}, d={self.dim})"
        )
