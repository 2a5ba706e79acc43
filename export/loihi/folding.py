"""Average pooling folded into the synapse after it, for Loihi (which has no pooling stage).

Pooling is linear on spike maps, so a convolution or a linear layer after a ``k x k``
average pooling (stride ``k``) is one convolution or linear layer on the unpooled map; the
``1/k^2`` only moves into the weight scale the quantiser chooses, so integer resolution is
unchanged and the spikes of the layer before the pooling stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnkd.errors import SnnkdError


@dataclass(frozen=True)
class Pool:
    """An average pooling node met between a neuron layer and a synapse."""

    name: str
    kernel: tuple[int, int]
    stride: tuple[int, int]


def fold_pool_into_conv(w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
                        pool: Pool, in_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """A convolution after a ``k x k`` average pooling (stride ``k``, no padding) as one
    convolution on the unpooled map, since pooling is linear:

        conv_w(pool(x))[o] = sum_j w[j] (1/k^2) sum_a x[k (s o - p + j) + a]
                           = sum_m w'[m] x[k s o - k p + m],   w'[m] = w[m // k] / k^2

    so the kernel grows to ``k K`` (each tap repeated ``k x k`` times and divided by
    ``k^2``), the stride becomes ``k s`` and the padding ``k p``.  Exact when ``k`` divides
    the unpooled height and width (a padded read of the pooled map then reads padding of
    the unpooled one, never a remainder row the pooling dropped).  Loihi has no pooling
    stage, and this keeps the spikes of the layer before the pooling exact: the 1/k^2
    only moves into the weight scale the quantiser chooses (integer resolution unchanged)."""
    (kh, kw), (sh, sw) = pool.kernel, pool.stride
    if (kh, kw) != (sh, sw):
        raise SnnkdError(f"{pool.name}: average pooling with stride {pool.stride} != kernel {pool.kernel} "
                         "cannot be folded into the next convolution for Loihi")
    if in_hw[0] % kh or in_hw[1] % kw:
        raise SnnkdError(f"{pool.name}: a {kh}x{kw} pooling of a {in_hw[0]}x{in_hw[1]} map drops rows; "
                         "it cannot be folded into the next convolution for Loihi")
    folded = np.repeat(np.repeat(w, kh, axis=2), kw, axis=3) / (kh * kw)
    return folded, (stride[0] * kh, stride[1] * kw), (padding[0] * kh, padding[1] * kw)


def fold_pool_into_dense(w: np.ndarray, pools: list[Pool], src_shape: tuple[int, ...], name: str) -> np.ndarray:
    """A linear layer after average poolings (nearest first) as one linear layer on the
    flattened unpooled ``(C, H, W)`` map: for one ``k x k`` pooling (stride ``k``)

        W'[n, c, h, w] = W[n, c, h // k, w // k] / k^2   (0 for rows/columns the pooling drops)

    Global average pooling is the case ``k = H = W``: ``W'[n, c, h, w] = W[n, c] / (H W)``."""
    sizes = [tuple(src_shape[1:])]  # map size before each pooling, farthest first
    for pool in reversed(pools):
        (kh, kw), (sh, sw) = pool.kernel, pool.stride
        if (kh, kw) != (sh, sw):
            raise SnnkdError(f"{pool.name}: average pooling with stride {pool.stride} != kernel {pool.kernel} "
                             "cannot be folded into the next layer for Loihi")
        sizes.append((sizes[-1][0] // kh, sizes[-1][1] // kw))
    c = src_shape[0]
    if w.shape[1] != c * sizes[-1][0] * sizes[-1][1]:
        raise SnnkdError(f"{name}: {w.shape[1]} inputs do not match the pooled map {c}x{sizes[-1][0]}x{sizes[-1][1]}")
    w = w.reshape(w.shape[0], c, *sizes[-1])
    for pool, hw in zip(pools, reversed(sizes[:-1])):  # nearest pooling first
        kh, kw = pool.kernel
        up = np.repeat(np.repeat(w, kh, axis=2), kw, axis=3) / (kh * kw)
        w = np.zeros(w.shape[:2] + hw)
        w[:, :, :up.shape[2], :up.shape[3]] = up
    return w.reshape(w.shape[0], -1)
