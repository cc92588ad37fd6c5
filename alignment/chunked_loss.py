"""A loss over the whole global batch computed one chunk of candidates at a time, the chunks passed
around the mesh with lax.ppermute (a ring).

Each device holds its own anchors and candidates plus one other device's chunk at a time, never the
gathered batch nor its [n, N] similarities: per-device memory grows with the local batch, not the global
one. The gradients travel back around the ring the same way (a custom VJP recomputes each chunk's part
instead of keeping it), so the backward pass keeps no [n, N] residuals either.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

# block(scalars, anchors, chunk, aux, positive) -> a partial result (a scalar or per-anchor [n]):
# scalars are the learned numbers (differentiable), anchors the local rows (a pytree of [n, ...]
# floats), chunk one device's candidates (a pytree of [m, ...] floats), aux (anchor_aux, chunk_aux)
# non-differentiable side data (such as classes) of the anchors and of the chunk, and positive the
# [n, m] mask of the anchors' own pairs in the chunk, or None where the chunk holds none.
Block = Callable[[Any, Any, Any, Any, jax.Array | None], jax.Array]


@dataclasses.dataclass(frozen=True)
class Reduction:
    """How partial results combine (an associative op) and the cotangent of one part given the
    cotangent g of the combined total."""

    combine: Callable[[jax.Array, jax.Array], jax.Array]
    part_cotangent: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (part, total, g)


SUM = Reduction(jnp.add, lambda part, total, g: g)
# d logaddexp_k(x_k) / d x_k = exp(x_k - total): the softmax weight of part k.
LOGSUMEXP = Reduction(jnp.logaddexp, lambda part, total, g: g * jnp.exp(part - total))


@dataclasses.dataclass(frozen=True)
class Ring:
    """The mesh axis the chunks travel around, and its size."""

    axis: str
    size: int

    def shift(self, tree: Any) -> Any:
        """Every array of `tree` moves to the next device of the axis (the last to the first)."""
        perm = [(i, (i + 1) % self.size) for i in range(self.size)]
        return jax.tree.map(lambda x: lax.ppermute(x, self.axis, perm), tree)


def _own_positive(anchors: Any, chunk: Any) -> jax.Array:
    """[n, m] the diagonal: in the device's own chunk, anchor i's pair is candidate i."""
    n = jax.tree.leaves(anchors)[0].shape[0]
    m = jax.tree.leaves(chunk)[0].shape[0]
    return jnp.eye(n, m, dtype=bool)


def _add(x: Any, y: Any) -> Any:
    return jax.tree.map(jnp.add, x, y)


def ring_reduce(
    block: Block,
    reduction: Reduction,
    ring: Ring,
    scalars: Any,
    anchors: Any,
    chunk: Any,
    aux: tuple[Any, Any] = (None, None),
) -> jax.Array:
    """reduction.combine over the ring's `ring.size` chunks of block(scalars, anchors, chunk_k, aux_k,
    positive_k), called per device inside shard_map over `ring.axis`.

    chunk: this device's candidates (a pytree of [m, ...] float arrays), the one holding the anchors'
    pairs on its diagonal; aux: (anchor_aux, chunk_aux), non-differentiable, chunk_aux travelling with
    the chunk. Differentiable in scalars, anchors and chunk (each chunk's gradient returns to its
    device); the result has the block's shape.
    """

    def parts(scalars, anchors, chunk, aux):
        total = block(scalars, anchors, chunk, aux, _own_positive(anchors, chunk))

        def body(_, carry):
            total, chunk, chunk_aux = carry
            chunk, chunk_aux = ring.shift((chunk, chunk_aux))
            part = block(scalars, anchors, chunk, (aux[0], chunk_aux), None)
            return reduction.combine(total, part), chunk, chunk_aux

        return lax.fori_loop(1, ring.size, body, (total, chunk, aux[1]))[0]

    @jax.custom_vjp
    def reduce(scalars, anchors, chunk, aux):
        return parts(scalars, anchors, chunk, aux)

    def forward(scalars, anchors, chunk, aux):
        total = parts(scalars, anchors, chunk, aux)
        return total, (scalars, anchors, chunk, aux, total)

    def backward(residuals, g):
        scalars, anchors, chunk, aux, total = residuals

        def grads(chunk, chunk_aux, positive):
            def part_of(s, a, c):
                return block(s, a, c, (aux[0], chunk_aux), positive)

            part, vjp = jax.vjp(part_of, scalars, anchors, chunk)
            return vjp(reduction.part_cotangent(part, total, g))

        d_scalars, d_anchors, d_chunk = grads(chunk, aux[1], _own_positive(anchors, chunk))

        # Each chunk travels with the gradient its visits have added up so far.
        def body(_, carry):
            d_scalars, d_anchors, chunk, chunk_aux, d_chunk = carry
            chunk, chunk_aux, d_chunk = ring.shift((chunk, chunk_aux, d_chunk))
            s, a, c = grads(chunk, chunk_aux, None)
            return _add(d_scalars, s), _add(d_anchors, a), chunk, chunk_aux, _add(d_chunk, c)

        carry = (d_scalars, d_anchors, chunk, aux[1], d_chunk)
        d_scalars, d_anchors, _, _, d_chunk = lax.fori_loop(1, ring.size, body, carry)
        # After size - 1 shifts each chunk sits one device before its owner: one more brings it home.
        return d_scalars, d_anchors, ring.shift(d_chunk), None

    reduce.defvjp(forward, backward)
    return reduce(scalars, anchors, chunk, aux)
