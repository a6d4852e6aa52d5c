r"""Data-parallel training over processes: the process group and the few collectives the solvers call.

``torchrun --nproc_per_node=N -m bridge solve ...`` (or ``fit``) starts ``N`` processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their
environment; :func:`init_from_env` joins them into one process group. Every process holds the
same networks and draws its own share of each Monte-Carlo batch from its own generator stream
(:meth:`Group.rank_seed`); after each backward pass the gradients are averaged over the
processes (:meth:`Group.average_gradients`), so each optimiser step follows the gradient of the
loss averaged over the *global batch* of ``world_size * batch_size`` rows:

.. math::
    \nabla_\theta \frac{1}{N}\sum_{r=1}^{N} \frac{1}{b}\sum_{i=1}^{b} \ell_\theta(\xi_{r,i})
    = \nabla_\theta \frac{1}{Nb}\sum_{j=1}^{Nb} \ell_\theta(\xi_j),

the gradient that one process with ``N`` times the batch takes (docs/math.md §5.13). With the
same initial weights on every rank (drawn from the common seed before the streams part) and
identical averaged gradients, the weights stay identical on every rank.

**An explicit all-reduce, not DistributedDataParallel.** The solver's step takes several backward
passes over different parameter sets (inner steps on the drift, an ascent step on the interpolant),
with gradient drifts it differentiates through ``torch.autograd.grad(create_graph=True)``, which
DDP's reducer does not support, and its networks are a few hundred kilobytes, so DDP's overlap of
communication with the backward pass buys nothing measurable. One all-reduce of the flattened
gradients per optimiser step is what DDP's bucketing would send anyway, for any module.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) everything here is a no-op: :data:`SINGLE`.

Example:
    >>> g = current()  # no process group: one process
    >>> g.world_size, g.is_main, g.all_gather(torch.ones(2, 3)).shape
    (1, True, torch.Size([2, 3]))
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import Tensor
from torch import distributed as tdist

__all__ = [
    "EXIT_WAIT",
    "RANK_SEED_OFFSET",
    "SINGLE",
    "Group",
    "current",
    "init_from_env",
    "launched_world_size",
    "process_group",
    "resolve_backend",
]

#: Rank ``r``'s training draws come from ``seed + r * RANK_SEED_OFFSET`` (rank 0: the seed's own
#: stream, so rank 0 of a distributed run draws what a single process would draw first).
RANK_SEED_OFFSET = 1_000_003
#: How long the ranks that finish first wait at the end of :func:`process_group` for the others
#: (rank 0 evaluates and writes the run alone after training, for as long as that takes).
EXIT_WAIT = timedelta(days=7)


def launched_world_size() -> int:
    """``WORLD_SIZE`` from the environment (set by ``torchrun``), 1 when unset."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"WORLD_SIZE: expected a positive int in the environment, got {raw!r}") from None
    if size < 1:
        raise ValueError(f"WORLD_SIZE: expected a positive int in the environment, got {raw!r}")
    return size


def resolve_backend(device: str) -> tuple[str, str]:
    """``(backend, reason)``: the process group's backend for training on ``device``.

    The one place where the backend is chosen: ``nccl`` for CUDA tensors (GPU-to-GPU
    collectives), ``gloo`` for CPU tensors (``nccl`` cannot move them).

    Example:
        >>> resolve_backend("cpu")[0]
        'gloo'
    """
    if device == "cuda":
        if not tdist.is_nccl_available():
            raise ValueError("device: cuda under torchrun needs torch built with NCCL; this torch has none")
        return "nccl", "nccl: --device cuda, the tensors live on the GPUs (one GPU per process, LOCAL_RANK)"
    if device != "cpu":
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    return "gloo", "gloo: --device cpu, the tensors live in host memory, which nccl cannot reduce"


@dataclass(frozen=True)
class Group:
    """The processes training together, seen from one of them.

    Attributes:
        rank: this process's index, ``0 .. world_size - 1``; rank 0 alone writes files and lines.
        world_size: the number of processes (1: not distributed, every method a no-op).
        backend: ``"gloo"``, ``"nccl"`` or None (one process).
        reason: why that backend (or why none).
        device: where the collectives' tensors must live (``cpu`` for gloo, this rank's GPU for nccl).
    """

    rank: int = 0
    world_size: int = 1
    backend: str | None = None
    reason: str = "one process: not launched by torchrun (WORLD_SIZE unset or 1)"
    device: str = "cpu"

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes checkpoints, reports and progress lines."""
        return self.rank == 0

    def record(self) -> dict:
        """What a report records: ``world_size``, ``backend`` and its reason."""
        return {"world_size": self.world_size, "backend": self.backend, "backend_reason": self.reason}

    def rank_seed(self, seed: int) -> int:
        """The seed of this rank's training stream: ``seed + rank * RANK_SEED_OFFSET``."""
        return seed + self.rank * RANK_SEED_OFFSET

    def share(self, n: int) -> int:
        """Rows per rank when ``n`` rows are drawn by all ranks together: ``ceil(n / world_size)``
        (the gathered rows are then cut to ``n``)."""
        return math.ceil(n / self.world_size)

    def all_gather(self, x: Tensor) -> Tensor:
        """Every rank's ``x`` (the same shape on each), concatenated along dim 0 in rank order."""
        if not self.is_distributed:
            return x
        y = x.detach().contiguous().to(self.device)
        parts = [torch.empty_like(y) for _ in range(self.world_size)]
        tdist.all_gather(parts, y)
        return torch.cat(parts).to(x.device)

    def average_gradients(self, params: Iterable[Tensor]) -> None:
        """Replace each parameter's ``.grad`` by its mean over the ranks (one all-reduce per dtype).

        Parameters without a gradient are skipped; which ones have one is the same on every rank
        (the same graph), so the flattened buffers line up."""
        if not self.is_distributed:
            return
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads]).to(self.device)
            tdist.all_reduce(flat)
            flat = flat.div_(self.world_size).to(grads[0].device)
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def broadcast_values(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (float64): the clock and the decisions taken on it."""
        if not self.is_distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        tdist.broadcast(t, src=0)
        return t.tolist()

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (picklable: tensors, dicts) on every rank."""
        if not self.is_distributed:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0, device=torch.device(self.device) if self.backend == "nccl" else None)
        return box[0]


#: The group of a process that runs alone.
SINGLE = Group()


def current() -> Group:
    """The :class:`Group` of the initialised default process group, or :data:`SINGLE` when there is
    none (how :func:`~bridge.sb.solve_bridge` and :func:`~bridge.train.train_fields` learn that
    they run distributed)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return SINGLE
    backend = str(tdist.get_backend())
    device = f"cuda:{torch.cuda.current_device()}" if backend == "nccl" else "cpu"
    reason = _REASONS.get(backend, f"{backend}: the process group was initialised by the caller")
    return Group(tdist.get_rank(), tdist.get_world_size(), backend, reason, device)


#: The reasons of the process group that :func:`init_from_env` initialised, by backend.
_REASONS: dict[str, str] = {}


def init_from_env(device: str = "cpu") -> Group:
    """Join the process group that ``torchrun`` describes in the environment.

    With ``WORLD_SIZE`` unset or 1 nothing happens and :data:`SINGLE` is returned. Otherwise the
    backend is :func:`resolve_backend`'s, the rendezvous is ``env://`` (``MASTER_ADDR``,
    ``MASTER_PORT``, ``RANK``) and, with ``nccl``, this process takes the GPU ``LOCAL_RANK``.

    Args:
        device: ``"cpu"`` or ``"cuda"``, where the training tensors live.

    Returns:
        This process's :class:`Group`.
    """
    size = launched_world_size()
    if size == 1:
        return SINGLE
    if tdist.is_initialized():
        return current()
    backend, reason = resolve_backend(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group(backend=backend, init_method="env://")
    _REASONS[backend] = reason
    return current()


@contextmanager
def process_group(device: str = "cpu") -> Iterator[Group]:
    """:func:`init_from_env` for the block, the process group destroyed after it (if it made one).

    After a block that ends without an exception every rank waits for the others (a barrier on
    a gloo group of its own, with the timeout :data:`EXIT_WAIT`) before the group is destroyed:
    a rank that destroyed its group and exited while rank 0 still held its connections sometimes
    aborted at interpreter exit (SIGABRT, "terminate called without an active exception"; a few
    2-process ``bridge solve`` runs in a hundred on a busy 2-core machine). A block that raises
    skips the wait; ``torchrun`` then stops the other ranks.
    """
    made = launched_world_size() > 1 and not tdist.is_initialized()
    group = init_from_env(device)
    leave = tdist.new_group(backend="gloo", timeout=EXIT_WAIT) if made else None
    try:
        yield group
        if leave is not None:
            tdist.barrier(group=leave)
    finally:
        if made and tdist.is_initialized():
            tdist.destroy_process_group()
