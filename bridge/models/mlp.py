r"""A fully connected network ``net(t, x) -> (n, d_out)`` with a Fourier time embedding.

The time ``t in [0, 1]`` enters through :math:`(t, \sin 2\pi k t, \cos 2\pi k t)_{k=1..K}`,
concatenated with ``x``. This is the model used for every field (b, s, eta, v) in the
fixed-interpolant trainer and the `bridge fit` command.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "TimeEmbedding", "MLP"]

#: The hidden layers' activations by name.
ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class TimeEmbedding(nn.Module):
    r"""``t -> (t, sin(2 pi k t), cos(2 pi k t))`` for ``k = 1..frequencies``; shape ``(n, 1 + 2K)``.

    Example:
        >>> import torch
        >>> TimeEmbedding(4)(torch.rand(3)).shape
        torch.Size([3, 9])
    """

    def __init__(self, frequencies: int = 8):
        super().__init__()
        if not isinstance(frequencies, int) or frequencies < 0:
            raise ValueError(f"frequencies: expected an int >= 0, got {frequencies!r}")
        self.frequencies = frequencies
        self.register_buffer(
            "k", 2.0 * math.pi * torch.arange(1, frequencies + 1, dtype=torch.float32), persistent=False
        )

    @property
    def dim(self) -> int:
        return 1 + 2 * self.frequencies

    def forward(self, t: Tensor) -> Tensor:
        t = t.reshape(-1, 1)
        k = self.k.to(t.dtype)
        return torch.cat([t, torch.sin(t * k), torch.cos(t * k)], dim=-1)


class MLP(nn.Module):
    """Multi-layer perceptron for a field ``f(t, x)`` on ``R^d``.

    Args:
        dim: data dimension ``d`` (input and, by default, output).
        hidden: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        activation: "silu", "relu", "gelu" or "tanh".
        frequencies: Fourier time frequencies.
        out_dim: output dimension (default ``dim``).
        generator: draws the initial weights (PyTorch's default ``nn.Linear`` scheme) so that
            a seed fixes the network without touching the global RNG.

    Shapes: ``t`` is a scalar, ``(n,)`` or ``(n, 1)``; ``x`` is ``(n, d)``; output ``(n, out_dim)``.

    Example:
        >>> import torch
        >>> net = MLP(2, hidden=32, depth=2)
        >>> net(torch.rand(5), torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "silu",
        frequencies: int = 8,
        out_dim: int | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        for name, val, lo in (("dim", dim, 1), ("hidden", hidden, 1), ("depth", depth, 1)):
            if not isinstance(val, int) or isinstance(val, bool) or val < lo:
                raise ValueError(f"{name}: expected an int >= {lo}, got {val!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.config = dict(
            dim=dim,
            hidden=hidden,
            depth=depth,
            activation=activation,
            frequencies=frequencies,
            out_dim=out_dim if out_dim is not None else dim,
        )
        self.embed = TimeEmbedding(frequencies)
        act = ACTIVATIONS[activation]
        # with a generator, layers are created without drawing from the global RNG (meta
        # device), then filled from the generator
        kw = {"device": "meta"} if generator is not None else {}
        layers: list[nn.Module] = [nn.Linear(dim + self.embed.dim, hidden, **kw), act()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden, **kw), act()]
        layers.append(nn.Linear(hidden, self.config["out_dim"], **kw))
        if generator is not None:
            layers = [layer.to_empty(device="cpu") for layer in layers]
        self.net = nn.Sequential(*layers)
        if generator is not None:
            self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw all weights as ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` from ``generator``."""
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                for p in (layer.weight, layer.bias):
                    p.copy_(torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 * bound - bound)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.config["dim"]:
            raise ValueError(f"x: expected shape (n, {self.config['dim']}), got {tuple(x.shape)}")
        if not isinstance(t, Tensor):
            t = x.new_tensor(float(t))
        if t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        elif t.numel() != x.shape[0]:
            raise ValueError(f"t: expected a scalar or {x.shape[0]} times, got shape {tuple(t.shape)}")
        return self.net(torch.cat([x, self.embed(t.to(x.dtype))], dim=-1))
