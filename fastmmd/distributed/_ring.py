"""The ring: every pair of shards meets once, no rank ever holds more than two shards.

Each rank holds its shard (x_r, y_r). At step 0 it computes the blocks within its own
shard. At step t = 1 .. ⌊P/2⌋ it holds the shard of rank s = r − t (mod P), passed along the ring from
rank r − 1, and computes the blocks between its shard and the visitor's:
- t < P/2: all of them: X_r×X_s and Y_r×Y_s (each standing for both orders, weight 2), X_r×Y_s, X_s×Y_r;
- t = P/2 (P even): ranks r and s meet twice, once on each side, so they split the work: X_r×Y_s on rank r
  and X_s×Y_r on rank s, and for X×X (and Y×Y) the lower rank L takes the first half of its own rows
  against the whole visitor, the higher rank the whole of its own rows against the second half of L's.
So each unordered pair of shards is computed once and, for equal shards, every rank computes the same number
of kernel pairs. A block may also produce per-row accumulators for the visitor's rows (gradients, row sums):
those are sent straight back to their owner after the step, and added there.
The next visitor is received while the current step computes. Memory per rank: its shard, two visiting
shards, and the accumulators of its shard and of one visitor: O((N + M)·d / P) for equal shards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from fastmmd.distributed._layout import ShardLayout

__all__ = ["Side", "Block", "ring_schedule", "run_ring"]

LOCAL, VISITOR = "local", "visitor"


@dataclass(frozen=True)
class Side:
    """Rows `start:stop` of sample `sample` ("x" or "y") of the local or visiting shard."""

    shard: str
    sample: str
    start: int
    stop: int


@dataclass(frozen=True)
class Block:
    """The pairs a × b of one kernel block. kind: "xx", "yy" or "xy" (which pair sum it adds to); symmetric:
    a is b (a self block, each unordered pair once); exclude_diag: without the pairs (i, i); weight: how many
    times the block's pairs count in the pair sum (2 for X_r×X_s, which stands for X_s×X_r too)."""

    kind: str
    a: Side
    b: Side
    symmetric: bool = False
    exclude_diag: bool = False
    weight: float = 1.0


def _whole(shard: str, sample: str, size: int) -> Side:
    return Side(shard, sample, 0, size)


def ring_schedule(layout: ShardLayout, exclude_self_diag: bool, exclude_xy_diag: bool) -> List[Tuple[int, List[Block]]]:
    """(visiting rank, blocks) for each step of this rank; step 0 visits itself. exclude_self_diag: leave
    the pairs (i, i) out of X×X and Y×Y; exclude_xy_diag: out of X×Y (x_i with y_i: needs n_r = m_r)."""
    r, world = layout.rank, layout.world
    nx, ny = layout.x_sizes, layout.y_sizes
    steps = [(r, [
        Block("xx", _whole(LOCAL, "x", nx[r]), _whole(LOCAL, "x", nx[r]), True, exclude_self_diag),
        Block("yy", _whole(LOCAL, "y", ny[r]), _whole(LOCAL, "y", ny[r]), True, exclude_self_diag),
        Block("xy", _whole(LOCAL, "x", nx[r]), _whole(LOCAL, "y", ny[r]), False, exclude_xy_diag),
    ])]
    for t in range(1, world // 2 + 1):
        s = (r - t) % world
        cross = [Block("xy", _whole(LOCAL, "x", nx[r]), _whole(VISITOR, "y", ny[s]))]
        if 2 * t < world:
            blocks = [Block(kind, _whole(LOCAL, c, sizes[r]), _whole(VISITOR, c, sizes[s]), weight=2.0)
                      for kind, c, sizes in (("xx", "x", nx), ("yy", "y", ny))]
            blocks += cross + [Block("xy", _whole(VISITOR, "x", nx[s]), _whole(LOCAL, "y", ny[r]))]
        else:
            blocks = [_half_block(kind, c, sizes, r, s) for kind, c, sizes in (("xx", "x", nx), ("yy", "y", ny))]
            blocks = [b for b in blocks if b is not None] + cross
        steps.append((s, blocks))
    return steps


def _half_block(kind: str, sample: str, sizes, r: int, s: int) -> Optional[Block]:
    """This rank's half of X_r × X_s when r and s meet at t = P/2 (None if that half is empty)."""
    lower = min(r, s)
    half = sizes[lower] // 2
    if r == lower:
        a, b = Side(LOCAL, sample, 0, half), _whole(VISITOR, sample, sizes[s])
    else:
        a, b = _whole(LOCAL, sample, sizes[r]), Side(VISITOR, sample, half, sizes[s])
    if a.stop == a.start or b.stop == b.start:
        return None
    return Block(kind, a, b, weight=2.0)


Pair = Dict[str, torch.Tensor]  # {"x": (n, ...), "y": (m, ...)}: a shard, or the accumulators of its rows


def _rows(pair: Pair, side: Side) -> torch.Tensor:
    return pair[side.sample][side.start:side.stop]


def _exchange(layout: ShardLayout, send: Pair, send_to: int, receive: Pair, receive_from: int):
    """Sends the two tensors of `send` to one rank while receiving `receive`'s from another."""
    ops = [dist.P2POp(dist.isend, send[c], layout.global_rank(send_to), layout.group) for c in "xy"]
    ops += [dist.P2POp(dist.irecv, receive[c], layout.global_rank(receive_from), layout.group) for c in "xy"]
    return dist.batch_isend_irecv(ops)


def _wait(works) -> None:
    for work in works:
        work.wait()


def _empty_shard(layout: ShardLayout, rank: int, like: torch.Tensor) -> Pair:
    return {"x": like.new_empty((layout.x_sizes[rank], like.shape[1])),
            "y": like.new_empty((layout.y_sizes[rank], like.shape[1]))}


def _zeros(pair: Pair, columns: int, dtype: torch.dtype) -> Pair:
    return {c: t.new_zeros((t.shape[0], columns), dtype=dtype) for c, t in pair.items()}


BlockFn = Callable[[Block, torch.Tensor, torch.Tensor], Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]]


def run_ring(layout: ShardLayout, x: torch.Tensor, y: torch.Tensor, schedule, compute: BlockFn, columns: int,
             accumulator_dtype: torch.dtype) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Runs `schedule` (ring_schedule) over the local shard, x (n_r, d) and y (m_r, d), contiguous.

    compute(block, a, b) -> (rows for a, rows for b): per-row accumulator contributions ((len a, columns),
    (len b, columns)) or None, for the accumulators of `columns` columns (0: none). Returns this rank's
    accumulators ((n_r, columns), (m_r, columns)) holding every rank's contributions to its rows, or None
    for 0 columns. Collective: every rank of the layout's group must call it with the same schedule.
    """
    r, world = layout.rank, layout.world
    shard = {"x": x, "y": y}
    mine = _zeros(shard, columns, accumulator_dtype) if columns else None

    def apply(blocks, visitor, visitor_acc) -> None:
        shards = {LOCAL: (shard, mine), VISITOR: (visitor, visitor_acc)}
        for block in blocks:
            (a_data, a_acc), (b_data, b_acc) = shards[block.a.shard], shards[block.b.shard]
            rows_a, rows_b = compute(block, _rows(a_data, block.a), _rows(b_data, block.b))
            for acc, side, rows in ((a_acc, block.a, rows_a), (b_acc, block.b, rows_b)):
                if columns and rows is not None:
                    _rows(acc, side).add_(rows)

    apply(schedule[0][1], None, None)
    nxt, prv = (r + 1) % world, (r - 1) % world
    incoming = pending = None
    if len(schedule) > 1:
        incoming = _empty_shard(layout, schedule[1][0], x)
        pending = _exchange(layout, shard, nxt, incoming, prv)
    for t in range(1, len(schedule)):
        source, blocks = schedule[t]
        _wait(pending)
        visitor = incoming
        if t + 1 < len(schedule):  # pass the visitor on while computing with it
            incoming = _empty_shard(layout, schedule[t + 1][0], x)
            pending = _exchange(layout, visitor, nxt, incoming, prv)
        visitor_acc = _zeros(visitor, columns, accumulator_dtype) if columns else None
        apply(blocks, visitor, visitor_acc)
        del visitor
        if columns:
            returned = {c: torch.empty_like(t) for c, t in mine.items()}
            _wait(_exchange(layout, visitor_acc, source, returned, (r + t) % world))
            for c in "xy":
                mine[c].add_(returned[c])
    return None if mine is None else (mine["x"], mine["y"])
