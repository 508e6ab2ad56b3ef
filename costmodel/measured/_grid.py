"""Interpolation on a rectilinear grid of measured latencies, in log space.

A table is a set of measured points ``(x_1, ..., x_d) -> t`` whose coordinates lie on a
rectilinear grid (every axis a sorted list of positive sizes). Between grid nodes the latency
is the multilinear interpolation of ``log t`` in ``log x_i``:

    log t(x) = sum over the 2^d corners c of the enclosing cell of  w_c(x) * log t_c
    w_c(x)   = prod_i  (u_i if c_i is the upper node else 1 - u_i)
    u_i      = (log x_i - log a_i[j]) / (log a_i[j+1] - log a_i[j])

so a latency that is a power law in each size (t ∝ x^p, which compute-bound and
bandwidth-bound kernels are) is reproduced exactly, and so is every measured point (its
weights are 1 at its own node and 0 elsewhere; zero-weight corners are never read).

Because ``log(2 m n k)`` is linear in ``log m``, ``log n``, ``log k``, interpolating log latency
and interpolating log achieved FLOP/s are the same scheme.

Coverage rules (``query(..., extrapolate=False)`` returns None outside them):

- every coordinate inside ``[a_i[0], a_i[-1]]``;
- every corner with non-zero weight measured.

With ``extrapolate=True`` two documented rules extend the table:

- above an axis's largest node, ``t = t(a_max) * (x / a_max) ** up_power[i]`` (time grows as
  the work: power 1 for a GEMM dimension, a batch, a message size; None = not allowed);
- below an axis's smallest node, ``t = t(a_min) * (x / a_min) ** down_power[i]`` where a
  ``down_power`` is given (0 = a flat latency floor, for collectives; None = not allowed);
- grid nodes the collector skipped (e.g. GEMMs with ``m * n >= 2**31``) are filled along the
  ``fill_axis`` (or axes, in order) from the largest measured node below them with the same
  power rule.
"""

from __future__ import annotations

import bisect
import math
from typing import Optional, Sequence, Union

import numpy as np


class LogGrid:
    """Measured latencies on a rectilinear grid, queried by log-multilinear interpolation."""

    __slots__ = ("axes", "log_axes", "log_axes_np", "log_t", "measured", "up_power", "down_power", "names")

    def __init__(self, axes: Sequence[Sequence[float]], log_t: np.ndarray, measured: np.ndarray,
                 up_power: Sequence[Optional[float]], down_power: Sequence[Optional[float]],
                 names: Sequence[str]):
        self.axes = tuple(tuple(float(v) for v in a) for a in axes)
        self.log_axes = tuple(tuple(math.log(v) for v in a) for a in self.axes)
        self.log_axes_np = tuple(np.asarray(la, dtype=float) for la in self.log_axes)  # for query_many
        self.log_t = log_t
        self.measured = measured
        self.up_power = tuple(up_power)
        self.down_power = tuple(down_power)
        self.names = tuple(names)

    @classmethod
    def from_points(cls, coords: Sequence[np.ndarray], latency_s: np.ndarray, *, names: Sequence[str],
                    up_power: Sequence[Optional[float]], down_power: Optional[Sequence[Optional[float]]] = None,
                    fill_axis: Union[int, Sequence[int], None] = 0) -> "LogGrid":
        """Build the grid from measured rows. Repeated measurements of one point are combined by
        their median; nodes of the grid that were not measured are filled along ``fill_axis``
        (one axis or several, in order; marked as not measured) when the axis has an ``up_power``."""
        d = len(coords)
        down_power = tuple(down_power) if down_power is not None else (None,) * d
        axes, idx = [], []
        for c in coords:
            c = np.asarray(c, dtype=float)
            if np.any(c <= 0):
                raise ValueError("grid coordinates must be positive")
            a, inv = np.unique(c, return_inverse=True)
            axes.append(a)
            idx.append(inv.reshape(-1))
        shape = tuple(len(a) for a in axes)
        flat = np.ravel_multi_index(tuple(idx), shape)
        log_lat = np.log(np.asarray(latency_s, dtype=float))
        order = np.argsort(flat, kind="stable")
        flat_sorted, log_sorted = flat[order], log_lat[order]
        uniq, starts = np.unique(flat_sorted, return_index=True)
        ends = np.append(starts[1:], len(flat_sorted))
        log_t = np.full(int(np.prod(shape)), np.nan)
        for u, s, e in zip(uniq, starts, ends):
            log_t[u] = log_sorted[s] if e - s == 1 else float(np.median(log_sorted[s:e]))
        log_t = log_t.reshape(shape)
        measured = ~np.isnan(log_t)
        fill_axes = () if fill_axis is None else (fill_axis,) if isinstance(fill_axis, int) else tuple(fill_axis)
        for ax in fill_axes:
            if up_power[ax] is not None:
                log_t = _fill_along(log_t, axes[ax], ax, float(up_power[ax]))
        return cls(axes, log_t, measured, up_power, down_power, names)

    def points(self):
        """Every measured node as ``(coords, latency_s)`` (for tests and error studies)."""
        for ix in zip(*np.nonzero(self.measured)):
            yield tuple(self.axes[i][j] for i, j in enumerate(ix)), float(math.exp(self.log_t[ix]))

    def without(self, axis: int, index: int) -> "LogGrid":
        """The same grid with one node of one axis removed (hold-out studies: interpolate the
        removed slice from its neighbours)."""
        axes = [list(a) for a in self.axes]
        del axes[axis][index]
        return LogGrid(axes, np.delete(self.log_t, index, axis=axis), np.delete(self.measured, index, axis=axis),
                       self.up_power, self.down_power, self.names)

    def query(self, point: Sequence[float], extrapolate: bool = False) -> Optional[float]:
        """Interpolated latency in seconds at ``point``, or None outside coverage (module doc)."""
        extra = 0.0
        per_axis = []  # (index, weight) pairs with non-zero weight, per axis
        for i, x in enumerate(point):
            x = float(x)
            if not x > 0 or not math.isfinite(x):
                return None
            a, la = self.axes[i], self.log_axes[i]
            if x < a[0]:
                p = self.down_power[i]
                if not extrapolate or p is None:
                    return None
                extra += p * (math.log(x) - la[0])
                per_axis.append(((0, 1.0),))
            elif x > a[-1]:
                p = self.up_power[i]
                if not extrapolate or p is None:
                    return None
                extra += p * (math.log(x) - la[-1])
                per_axis.append(((len(a) - 1, 1.0),))
            else:
                j = bisect.bisect_left(a, x)
                if a[j] == x:
                    per_axis.append(((j, 1.0),))
                else:
                    u = (math.log(x) - la[j - 1]) / (la[j] - la[j - 1])
                    per_axis.append(((j - 1, 1.0 - u), (j, u)))
        total = 0.0
        corners = [((), 1.0)]
        for choices in per_axis:
            corners = [(ix + (j,), w * wj) for ix, w in corners for j, wj in choices if wj > 0.0]
        for ix, w in corners:
            v = self.log_t[ix]
            if v != v:  # NaN: a hole the fill could not cover
                return None
            if not extrapolate and not self.measured[ix]:
                return None
            total += w * float(v)
        return math.exp(total + extra)


    def query_many(self, columns: Sequence, extrapolate: bool = False) -> np.ndarray:
        """``query`` over numpy arrays of coordinates (one array or number per axis, broadcast together):
        the same interpolation and coverage rules, NaN where ``query`` returns None. For the serving
        simulator, which prices thousands of iterations at once."""
        cols = np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in columns])
        shape = cols[0].shape
        cols = [c.ravel() for c in cols]
        n = cols[0].size
        ok = np.ones(n, dtype=bool)
        extra = np.zeros(n)
        lower, frac = [], []
        for i, x in enumerate(cols):
            la = self.log_axes_np[i]
            good = (x > 0) & np.isfinite(x)
            ok &= good
            lx = np.log(np.where(good, x, 1.0))
            for mask, p, edge in ((lx < la[0] - 1e-12, self.down_power[i], la[0]),
                                  (lx > la[-1] + 1e-12, self.up_power[i], la[-1])):
                if mask.any():
                    if not extrapolate or p is None:
                        ok &= ~mask
                    else:
                        extra += np.where(mask, p * (lx - edge), 0.0)
            lx = np.clip(lx, la[0], la[-1])
            if len(la) == 1:
                lower.append(np.zeros(n, dtype=np.intp))
                frac.append(np.zeros(n))
                continue
            j = np.clip(np.searchsorted(la, lx, side="right") - 1, 0, len(la) - 2)
            lower.append(j)
            frac.append((lx - la[j]) / (la[j + 1] - la[j]))
        total = np.zeros(n)
        for corner in np.ndindex(*(2,) * len(cols)):
            w = np.ones(n)
            idx = []
            for c, j, u, a in zip(corner, lower, frac, self.axes):
                w = w * (u if c else 1.0 - u)
                idx.append(np.minimum(j + c, len(a) - 1))
            need = w > 0.0
            if not need.any():
                continue
            v = self.log_t[tuple(idx)]
            bad = np.isnan(v) if extrapolate else (np.isnan(v) | ~self.measured[tuple(idx)])
            ok &= ~(need & bad)
            total += np.where(need, w * np.nan_to_num(v), 0.0)
        return np.where(ok, np.exp(total + extra), np.nan).reshape(shape)


def _fill_along(log_t: np.ndarray, axis_values: np.ndarray, axis: int, power: float) -> np.ndarray:
    """Fill NaN nodes along ``axis`` from the largest measured node below each one:
    ``log t = log t(a_j) + power * (log a - log a_j)`` (the ``up_power`` rule)."""
    out = np.moveaxis(log_t.copy(), axis, -1)
    la = np.log(np.asarray(axis_values, dtype=float))
    flat = out.reshape(-1, out.shape[-1])
    for row in flat:
        last = -1
        for j in range(len(row)):
            if row[j] == row[j]:
                last = j
            elif last >= 0:
                row[j] = row[last] + power * (la[j] - la[last])
    return np.moveaxis(flat.reshape(out.shape), -1, axis)
