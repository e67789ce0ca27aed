"""Column currents of packed tiles from circuit simulation instead of the transfer model.

:class:`CircuitCurrents` is the ``currents_from`` of :class:`~pyaimc.analog.packed.PackedTiles`
(and of :class:`~pyaimc.s4d.packed.PackedBackend`): for every product it builds the crossbars
of its programmed tiles, plus and minus arrays alike, and solves them for the row voltages of
the whole batch. The circuit is the noise model's crossbar, as the ngspice step check builds it
(:mod:`pyaimc.experiments.spice_step`): wire resistance ``tile.r_wire`` per segment (0 when not
stated), ideal drivers and read-out, and cells with the I-V the transfer model describes,
``I = G v (1 + c2(gn) v + c3(gn) v**2)`` (linear cells when it has no input non-linearity);
the read-out's saturation ``i_sat`` clips each array's column currents, as modelled.

Solvers (``solver``):

* ``"batched"`` (default): :class:`~pyaimc.circuit.batched.SparseCrossbars`, all tiles of a
  product and the whole batch at once, cost proportional to the cells in use (tested equal to
  the ``fast`` engine to 1e-9);
* any registered engine name (``"fast"``, ``"ngspice"``): one crossbar per tile and polarity
  through :func:`~pyaimc.circuit.engines.get_engine`, the batch per call (slow; for checks).
"""

from __future__ import annotations

import numpy as np
import torch

from pyaimc.circuit.batched import SparseCrossbars

__all__ = ["CircuitCurrents"]


class CircuitCurrents:
    """Tile column currents ``I+ - I-`` from a circuit solver (see the module docstring).

    Parameters
    ----------
    noise_model : NoiseModel
    solver : str
        ``"batched"`` or a registered engine name.
    tol : float
        Relative KCL tolerance of the batched solver.

    Attributes
    ----------
    stats : dict
        Totals over all calls: ``calls``, ``vectors`` (input vectors x tiles), ``seconds``,
        largest Newton step count and residual.
    """

    def __init__(self, noise_model, solver: str = "batched", tol: float = 1e-10):
        self.noise_model = noise_model
        self.solver = solver
        self.tol = float(tol)
        self.r_wire = float(noise_model.tile.r_wire or 0.0)
        tm = noise_model.transfer
        self.law = tm if (tm is not None and tm.has_nonlinearity) else None
        self.i_sat = None if tm is None else tm.i_sat
        self._cache: dict[int, tuple] = {}
        self.stats = {"calls": 0, "vectors": 0, "seconds": 0.0, "newton_max": 0,
                      "residual_max": 0.0}
        #: per product: [summed crossbar power of its reads (W), reads] (batched solver)
        self.power: dict[str, list] = {}

    def coefficients(self, g: torch.Tensor) -> torch.Tensor:
        """Cell I-V coefficients ``(n, K)`` for conductances ``g`` (S)."""
        if self.law is None:
            return g[:, None]
        tm = self.law
        gn = (g - tm.g_min) / (tm.g_max - tm.g_min)
        return torch.stack([g, g * (tm.c2[0] + tm.c2[1] * gn), g * (tm.c3[0] + tm.c3[1] * gn)],
                           dim=1)

    def _crossbars(self, tiles) -> SparseCrossbars:
        key = id(tiles)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is tiles.g_tiles:
            return hit[1]
        g = tiles.g_tiles.to(torch.float64)
        lay = tiles.layout
        sc = SparseCrossbars.from_tiles(g.reshape(2 * lay.n_tiles, lay.rows, lay.cols),
                                        self.r_wire, self.r_wire, self.coefficients)
        self._cache[key] = (tiles.g_tiles, sc)
        return sc

    @torch.no_grad()
    def __call__(self, tiles, v: torch.Tensor) -> torch.Tensor:
        import time

        tic = time.perf_counter()
        lay = tiles.layout
        batch = v.shape[0]
        if self.solver == "batched":
            sc = self._crossbars(tiles)
            both = torch.cat([v, v], dim=1)                       # plus arrays, then minus
            i, st = sc.solve(both, tol=self.tol)
            self.stats["newton_max"] = max(self.stats["newton_max"], st["newton"])
            self.stats["residual_max"] = max(self.stats["residual_max"], st["residual"])
            acc = self.power.setdefault(lay.name, [0.0, 0])
            acc[0] += st["power"]
            acc[1] += batch
            i = i.reshape(batch, 2, lay.n_tiles, lay.cols)
        else:
            i = torch.from_numpy(self._engine_currents(tiles, v)).reshape(
                batch, 2, lay.n_tiles, lay.cols)
        if self.i_sat is not None:
            i = i.clamp(-self.i_sat, self.i_sat)
        self.stats["calls"] += 1
        self.stats["vectors"] += batch * lay.n_tiles
        self.stats["seconds"] += time.perf_counter() - tic
        return (i[:, 0] - i[:, 1]).to(tiles.dtype)

    def _engine_currents(self, tiles, v: torch.Tensor) -> np.ndarray:
        from pyaimc.circuit import Crossbar, LinearCells, PolynomialCells
        from pyaimc.circuit.engines import get_engine

        engine = get_engine(self.solver)
        lay = tiles.layout
        g = tiles.g_tiles.double().numpy()
        vv = v.double().numpy()
        out = np.zeros((vv.shape[0], 2, lay.n_tiles, lay.cols))
        for p in range(2):
            for t in range(lay.n_tiles):
                gt = g[p, t]
                if self.law is None:
                    cells = LinearCells(gt)
                else:
                    cells = PolynomialCells(self.coefficients(
                        torch.from_numpy(gt.reshape(-1))).numpy().reshape(*gt.shape, -1))
                xbar = Crossbar(cells, r_row=self.r_wire, r_col=self.r_wire)
                out[:, p, t] = engine.column_currents(xbar, vv[:, t])
        return out
