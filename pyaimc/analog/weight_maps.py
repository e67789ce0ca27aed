"""Weight-to-conductance mappings of the tile core, registered by name.

A mapping says which cells hold a weight and how their column currents combine. Every mapping
here puts a normalised weight ``wn = w / s_o`` (``s_o`` the output channel's scale, ``|wn| <= 1``)
on ``P`` column pairs ``(a_k, b_k)``; the tile reads ``I_k = v . a_k - v . b_k`` on each and the
periphery combines them with gains ``c_k`` before the ADC, so that the layer computes with the
effective normalised weight

    d = sum_k c_k (g_a_k - g_b_k) / (g_max - g_min)        (= wn when programmed exactly)

and each column pair's read noise enters with its gain squared. Built in:

``"differential_pair"`` (the default, :class:`DifferentialPair`)
    ``P = 1``, ``c = 1``: ``g_a = g_min + span max(wn, 0)``, ``g_b`` alike for ``-wn``.
``"single_device"`` (:class:`SingleDevice`)
    One cell per weight around the middle of the window, ``g = g_mid + span wn / 2``, read
    against a reference column of cells programmed to ``g_mid`` (one per tile, shared by the
    tile's outputs; its programming error is common to them), ``c = 2``: half the cells, half
    the signal per cell.
``"n_pairs"`` (:class:`NPairs`)
    ``P`` pairs with significances ``c_k = F**(P-1-k) / sum_j F**j`` (``F = 1``: equal pairs,
    their errors average out; ``F > 1``: a most significant pair and finer ones). Each pair
    holds a signed share ``b_k(wn)`` with ``sum_k c_k b_k = wn``: by default ``b_k = wn``; with
    ``correct`` the pairs are written in order and each later pair targets what the pairs
    written before it missed (read back after programming, closed loop).
``"optimised_pairs"`` (:class:`OptimisedPairs`)
    ``n_pairs`` whose shares ``b_k(wn)`` minimise the expected squared error of ``d`` given the
    noise model's programming statistics per level (mean offset and spread of the write
    scheme, both cells of each pair): the weight-programming optimisation of Mackin et al.
    2022 (Nat. Commun. 13, 3765), solved here on a grid of weights and interpolated.

Tensors: ``wn`` (..., out, in); cells come back as ``(P, ..., out, in)`` pairs. The tile core
(:class:`~pyaimc.analog.core.TileCore`) takes the mapping named by
``AnalogConfig.mapping`` with ``AnalogConfig.mapping_options``; a new one is a subclass of
:class:`WeightMap` decorated with :func:`register_weight_map`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

__all__ = ["WEIGHT_MAPS", "DifferentialPair", "NPairs", "OptimisedPairs", "SingleDevice",
           "WeightMap", "get_weight_map", "register_weight_map"]

#: registered mappings by name
WEIGHT_MAPS: dict[str, type] = {}


def register_weight_map(cls: type) -> type:
    """Class decorator: register a :class:`WeightMap` subclass under its ``name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' (str)")
    WEIGHT_MAPS[name] = cls
    return cls


def get_weight_map(name: str, core=None, **options) -> "WeightMap":
    """The mapping ``name`` with ``options``, prepared for the tile core ``core``.

    Raises
    ------
    ValueError
        Naming the registered mappings when ``name`` is unknown, or a bad option.
    """
    try:
        cls = WEIGHT_MAPS[name]
    except (KeyError, TypeError):
        raise ValueError(f"mapping {name!r} is not registered (known: "
                         f"{', '.join(sorted(WEIGHT_MAPS))})") from None
    try:
        m = cls(**options)
    except TypeError as err:
        raise ValueError(f"mapping {name!r}: bad option ({err})") from None
    if core is not None:
        m.prepare(core)
    return m


class WeightMap:
    """A weight-to-conductance mapping (see the module docstring).

    Attributes
    ----------
    name : str
    n_pairs : int
        Column pairs per weight, ``P``.
    gains : tuple of float
        ``c_k``, one per pair.
    native : bool
        True only for the differential pair, which the layers compute on their fast path.
    """

    name = ""
    native = False
    n_pairs = 1
    gains: tuple = (1.0,)

    def prepare(self, core) -> None:
        """Read what the mapping needs from the tile core (window, programming statistics)."""
        self.g_min, self.span = core.g_min, core.span

    # the two things a mapping says
    def targets(self, wn: torch.Tensor, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Target conductances ``(g_a, g_b)``, each (P, ..., out, in), S; differentiable in
        ``wn``. ``cols`` is the physical tile's column count (reference columns are per tile)."""
        raise NotImplementedError

    def program(self, wn: torch.Tensor, sampler, generator, cols: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One programmed instance ``(g_a, g_b)`` (P, ..., out, in), S, by the noise model's
        ``sampler`` (None: the targets)."""
        raise NotImplementedError

    # derived
    def gain_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """``c_k`` shaped to broadcast over (P, ..., out, in)."""
        return torch.tensor(self.gains, dtype=like.dtype, device=like.device).reshape(
            (-1,) + (1,) * (like.dim() - 1))

    def combine(self, g_a: torch.Tensor, g_b: torch.Tensor) -> torch.Tensor:
        """``sum_k c_k (g_a_k - g_b_k)`` (..., out, in), S: the conductance difference the
        periphery reads per weight."""
        return (self.gain_tensor(g_a) * (g_a - g_b)).sum(dim=0)

    def noise_conductance(self, g_a: torch.Tensor, g_b: torch.Tensor) -> torch.Tensor:
        """``sum_k c_k**2 (g_a_k + g_b_k)`` (..., out, in), S: what the column read noise sees
        (variances add, scaled by each pair's gain squared)."""
        return (self.gain_tensor(g_a) ** 2 * (g_a + g_b)).sum(dim=0)

    def options(self) -> dict:
        """The options that rebuild this mapping."""
        return {}


@register_weight_map
class DifferentialPair(WeightMap):
    """Two cells per weight, one per sign (the noise model's ``mapping`` field)."""

    name = "differential_pair"
    native = True

    def pair_targets(self, wn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``g+``, ``g-`` (shape of ``wn``; S)."""
        return (self.g_min + self.span * wn.clamp(min=0.0),
                self.g_min + self.span * (-wn).clamp(min=0.0))

    def targets(self, wn, cols):
        g_a, g_b = self.pair_targets(wn)
        return g_a.unsqueeze(0), g_b.unsqueeze(0)

    @torch.no_grad()
    def program(self, wn, sampler, generator, cols):
        if sampler is None:
            g_a, g_b = self.pair_targets(wn)
        else:
            g_a, g_b = sampler.sample_cells(wn, generator)
        return g_a.unsqueeze(0), g_b.unsqueeze(0)


def _per_tile_reference(ref: torch.Tensor, out_f: int, cols: int) -> torch.Tensor:
    """A reference row (..., n_col_tiles, in) spread over the outputs of each tile:
    (..., out, in)."""
    return ref.repeat_interleave(cols, dim=-2)[..., :out_f, :]


@register_weight_map
class SingleDevice(WeightMap):
    """One cell per weight and a reference column per tile at the middle of the window."""

    name = "single_device"
    gains = (2.0,)

    def prepare(self, core) -> None:
        super().prepare(core)
        self.g_mid = core.g_min + core.span / 2

    def _reference_shape(self, wn: torch.Tensor, cols: int) -> tuple:
        return (*wn.shape[:-2], math.ceil(wn.shape[-2] / cols), wn.shape[-1])

    def targets(self, wn, cols):
        g_a = self.g_mid + (self.span / 2) * wn
        g_b = torch.full_like(g_a, self.g_mid)
        return g_a.unsqueeze(0), g_b.unsqueeze(0)

    @torch.no_grad()
    def program(self, wn, sampler, generator, cols):
        g_a = self.g_mid + (self.span / 2) * wn
        if sampler is None:
            return g_a.unsqueeze(0), torch.full_like(g_a, self.g_mid).unsqueeze(0)
        g_a = sampler.sample(g_a, generator)
        ref = sampler.sample(torch.full(self._reference_shape(wn, cols), self.g_mid,
                                        dtype=wn.dtype, device=wn.device), generator)
        g_b = _per_tile_reference(ref, wn.shape[-2], cols)
        return g_a.unsqueeze(0), g_b.unsqueeze(0)


@register_weight_map
class NPairs(WeightMap):
    """``n_pairs`` differential pairs per weight with significance ratio ``significance``.

    Parameters
    ----------
    n_pairs : int
        Pairs per weight (>= 1).
    significance : float
        Ratio of consecutive pairs' gains, ``F >= 1`` (1: equal pairs).
    correct : bool
        Program the pairs in order, each later one aimed at what the earlier ones missed
        (closed loop: the earlier pairs are read back, without read noise).
    """

    name = "n_pairs"

    def __init__(self, n_pairs: int = 2, significance: float = 1.0, correct: bool = False):
        if not (isinstance(n_pairs, int) and n_pairs >= 1):
            raise ValueError(f"n_pairs must be an integer >= 1, got {n_pairs!r}")
        if not significance >= 1:
            raise ValueError(f"significance must be >= 1, got {significance}")
        self.n_pairs, self.significance, self.correct = n_pairs, float(significance), \
            bool(correct)
        f = np.array([self.significance ** (n_pairs - 1 - k) for k in range(n_pairs)])
        self.gains = tuple(float(x) for x in f / f.sum())

    def options(self) -> dict:
        return {"n_pairs": self.n_pairs, "significance": self.significance,
                "correct": self.correct}

    def shares(self, wn: torch.Tensor) -> torch.Tensor:
        """The signed normalised level of each pair (P, ..., out, in) for weights ``wn``; here
        every pair holds ``wn`` (sum of the gains is 1)."""
        return wn.unsqueeze(0).expand(self.n_pairs, *wn.shape)

    def _pair_targets(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.g_min + self.span * b.clamp(min=0.0),
                self.g_min + self.span * (-b).clamp(min=0.0))

    def targets(self, wn, cols):
        return self._pair_targets(self.shares(wn))

    @torch.no_grad()
    def program(self, wn, sampler, generator, cols):
        b = self.shares(wn)
        if sampler is None:
            return self._pair_targets(b)
        if not self.correct:
            g_a, g_b = sampler.sample_cells(b.contiguous(), generator)
            return g_a, g_b
        g_a, g_b = torch.empty_like(b), torch.empty_like(b)
        done = torch.zeros_like(wn)              # what the written pairs hold, sum c_j d_j
        for k, c in enumerate(self.gains):
            rest = sum(self.gains[k:])
            # the remaining pairs share what is still missing equally (in their units)
            level = ((wn - done) / rest).clamp(-1.0, 1.0)
            g_a[k], g_b[k] = sampler.sample_cells(level, generator)
            done = done + c * (g_a[k] - g_b[k]) / self.span
        return g_a, g_b


@register_weight_map
class OptimisedPairs(NPairs):
    """:class:`NPairs` whose shares minimise the expected squared weight error.

    For each normalised weight ``u`` on a grid over [0, 1] the shares ``b_k`` (each on a grid of
    ``levels`` values in [-1, 1]) minimise

        (sum_k c_k m(b_k) - u)**2 + sum_k c_k**2 s(b_k)**2  +  reg * sum_k c_k (b_k - u)**2

    where ``m(b)``, ``s(b)`` are the mean and spread of a pair programmed to ``b`` (in units of
    ``g_max - g_min``, both cells, from the noise model's sampler of the configured write
    scheme, without stuck cells) and the small last term picks the even split among equal
    choices. Negative weights use the mirrored shares. Between grid points the shares are
    interpolated linearly (so the gradient of the effective weight stays 1).

    Parameters
    ----------
    n_pairs, significance : as :class:`NPairs`
    grid : int
        Weight grid points over [0, 1].
    levels : int
        Candidate levels per pair over [-1, 1] (the search is ``levels ** (n_pairs - 1)`` per
        weight: the last pair's level is the one whose mean completes the weight).
    reg : float
    """

    name = "optimised_pairs"

    def __init__(self, n_pairs: int = 2, significance: float = 1.0, grid: int = 65,
                 levels: int = 81, reg: float = 1e-4):
        super().__init__(n_pairs, significance, False)
        if n_pairs > 3:
            raise ValueError("optimised_pairs searches up to 3 pairs (got "
                             f"{n_pairs}); use n_pairs for more")
        self.grid, self.levels, self.reg = int(grid), int(levels), float(reg)
        self.table = None

    def options(self) -> dict:
        return {"n_pairs": self.n_pairs, "significance": self.significance, "grid": self.grid,
                "levels": self.levels, "reg": self.reg}

    def prepare(self, core) -> None:
        super().prepare(core)
        sampler = core.noise_model.programming_sampler(core.config.programming_method, False)
        self._sampler = sampler
        self.table = self.optimise(sampler)

    def pair_moments(self, sampler, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread (units of ``g_max - g_min``) of ``g+ - g-`` of a pair programmed to
        signed normalised levels ``b``."""
        gt = torch.as_tensor(self.g_min + self.span * np.abs(b), dtype=torch.float64)
        mean, std = sampler.moments(gt)
        m0, s0 = sampler.moments(torch.tensor([self.g_min], dtype=torch.float64))
        m = (mean.numpy() - float(m0[0])) / self.span * np.sign(b)
        s = np.sqrt(std.numpy() ** 2 + float(s0[0]) ** 2) / self.span
        return m, s

    def optimise(self, sampler) -> np.ndarray:
        """Shares (grid, P) for weights ``linspace(0, 1, grid)``."""
        c = np.asarray(self.gains)
        u = np.linspace(0.0, 1.0, self.grid)
        cand = np.linspace(-1.0, 1.0, self.levels)
        m, s = self.pair_moments(sampler, cand)
        best = np.zeros((self.grid, self.n_pairs))
        if self.n_pairs == 1:
            best[:, 0] = u
            return best
        # all choices of the first P-1 pairs; the last pair takes the rest (on a fine grid)
        heads = np.array(list(itertools.product(range(self.levels), repeat=self.n_pairs - 1)))
        head_mean = (c[:-1] * m[heads]).sum(axis=1)                 # (H,)
        head_var = (c[:-1] ** 2 * s[heads] ** 2).sum(axis=1)
        head_b = cand[heads]                                        # (H, P-1)
        # the last pair is continuous: the level whose mean makes the expected weight right
        # (the mean is increasing in the level), clipped to the window
        order = np.argsort(m)
        for j, uj in enumerate(u):
            want = (uj - head_mean) / c[-1]                          # (H,) mean wanted
            b_last = np.interp(want, m[order], cand[order])
            m_last = np.interp(b_last, cand, m)
            s_last = np.interp(b_last, cand, s)
            cost = (head_mean + c[-1] * m_last - uj) ** 2 + head_var + c[-1] ** 2 * s_last ** 2
            cost = cost + self.reg * ((c[:-1] * (head_b - uj) ** 2).sum(axis=1)
                                      + c[-1] * (b_last - uj) ** 2)
            h = int(np.argmin(cost))
            best[j, :-1] = head_b[h]
            best[j, -1] = b_last[h]
        return best

    def shares(self, wn: torch.Tensor) -> torch.Tensor:
        table = torch.as_tensor(self.table, dtype=wn.dtype, device=wn.device)   # (grid, P)
        a = wn.abs().clamp(max=1.0) * (self.grid - 1)
        lo = a.detach().floor().clamp(max=self.grid - 2)
        t = a - lo
        lo = lo.long()
        b = table[lo] * (1 - t).unsqueeze(-1) + table[lo + 1] * t.unsqueeze(-1)  # (..., P)
        b = b * torch.sign(wn).unsqueeze(-1)
        return b.movedim(-1, 0)

    def expected_error(self, sampler=None) -> dict:
        """RMS error of the effective weight over the weight grid (units of ``s_o``), from the
        programming statistics: the optimised shares beside every pair holding the weight."""
        sampler = sampler if sampler is not None else self._sampler
        c = np.asarray(self.gains)
        u = np.linspace(0.0, 1.0, self.grid)

        def rms(b):
            m, s = self.pair_moments(sampler, b.ravel())
            m, s = m.reshape(b.shape), s.reshape(b.shape)
            err = ((m * c).sum(axis=1) - u) ** 2 + (s ** 2 * c ** 2).sum(axis=1)
            return float(np.sqrt(err.mean()))

        return {"optimised": rms(self.table), "equal": rms(np.repeat(u[:, None],
                                                                     self.n_pairs, axis=1))}
