"""The hardware noise model: everything a hardware-aware training run needs, nothing more.

One :class:`NoiseModel` (a nested, typed dataclass) saved as versioned JSON, ``pyaimc.noise/2``
(``pyaimc.noise/1`` files still load)::

    window       conductance window [g_min, g_max] (S) and the read voltage that defines G
    mapping      signed weights -> differential conductance pairs (per output channel scale)
    programming  [kind] achieved conductance per target level for each exported write scheme:
                 mean, spread (device-to-device and cycle-to-cycle parts), failed writes,
                 pulses; and polynomials of the normalised target for the training-time sampler
    defects      stuck cells (fraction, conductance) and, for information, outlier devices
    read_noise   [kind] Johnson and shot noise of each cell at a stated bandwidth
    retention    [kind] the conductance at a time after programming ("none": unchanged)
    periphery    [kind] input DAC and column ADC resolution and ranges
    tile         tile size and wire resistance
    transfer     the crossbar transfer model (pyaimc.transfer/1) or None (ideal crossbar)

Parts marked [kind] are plug-ins chosen by their ``"kind"`` key (:mod:`pyaimc.noise.protocols`).

Build one from a fitted device model with :func:`pyaimc.noise.export_noise_model`; the ideal
preset :meth:`NoiseModel.ideal` has no noise at all (a reference for tests and ablations).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyaimc.circuit.transfer import TransferError, TransferModel, as_transfer
from pyaimc.errors import InputError
from pyaimc.io import SchemaError, provenance, read_json, write_json
from pyaimc.noise.periphery import ADC, DAC, DacAdc
from pyaimc.noise.programming import ProgrammingTable, TableProgramming
from pyaimc.noise.protocols import build
from pyaimc.noise.read_noise import ReadNoise
from pyaimc.noise.retention import NoRetention

SCHEMA = "pyaimc.noise/2"
#: schemas this version reads
READABLE = ("pyaimc.noise/1", SCHEMA)
#: the write schemes every cycling-model export tabulates
METHODS = ("one_shot", "write_verify")
#: the programming part as it was called before it had kinds
Programming = TableProgramming


class NoiseModelError(InputError):
    """A noise model has missing, impossible or mutually inconsistent fields."""


@dataclass
class Window:
    """Conductance window of the cells.

    Attributes
    ----------
    g_min, g_max : float
        Lowest and highest target conductance, S (chord conductance at ``u_read``).
    u_read : float
        Read voltage that defines a cell's conductance, V.
    rule : str
        How the window was chosen.
    """

    g_min: float
    g_max: float
    u_read: float = 0.2
    rule: str = ""

    def normalise(self, g):
        """``(g - g_min) / (g_max - g_min)``: 0 at g_min, 1 at g_max."""
        return (np.asarray(g, dtype=np.float64) - self.g_min) / (self.g_max - self.g_min)


@dataclass
class Mapping:
    """How a signed weight becomes a pair of conductances.

    Weight ``w`` of output channel ``o`` with scale ``s_o = max_i |w_oi|``: the positive cell
    targets ``g_min + (g_max - g_min) * max(w, 0) / s_o``, the negative cell
    ``g_min + (g_max - g_min) * max(-w, 0) / s_o``; the output is the difference of the two
    columns' currents, multiplied back by ``s_o`` digitally.
    """

    kind: str = "differential_pair"
    scale: str = "per_output_channel_abs_max"


@dataclass
class Defects:
    """Cells that do not follow the programming statistics.

    Attributes
    ----------
    stuck_fraction : float
        Cells that do not switch and hold ``stuck_g`` whatever the target. From the device fit:
        the cells it excluded as stuck over all cells measured.
    stuck_g : float
        Conductance of a stuck cell, S.
    outlier_fraction : float
        For information: weight of the smallest device population when it is an outlier
        population (weight <= 0.1 of a mixture of two or more). Those devices are drawn in the
        programming simulation, so their effect is already in the programming tables.
    narrow_window_fraction : float
        For information: devices whose median cycle cannot reach ``g_max`` (median LRS below it)
        or ``g_min`` (median HRS above it); also already in the tables (as failed verifies).
    notes : str
    """

    stuck_fraction: float = 0.0
    stuck_g: float = 0.0
    outlier_fraction: float = 0.0
    narrow_window_fraction: float = 0.0
    notes: str = ""


@dataclass
class Tile:
    """Tile size (rows = inputs, cols = outputs per tile) and wire resistance per segment (ohm;
    None when not stated: an ideal crossbar)."""

    rows: int = 64
    cols: int = 64
    r_wire: float | None = None


@dataclass
class NoiseModel:
    """The hardware noise model of one device model on one crossbar design.

    Attributes
    ----------
    window : Window
    programming : TableProgramming (or another registered programming kind)
    defects : Defects
    read_noise : ReadNoise (or another registered read-noise kind)
    periphery : DacAdc (or another registered periphery kind)
    tile : Tile
    transfer : TransferModel or None
        The crossbar transfer model (IR drop, input non-linearity, read-out saturation) for this
        tile, or None for an ideal crossbar. A ``pyaimc.transfer/1`` document is converted.
    retention : NoRetention (or another registered retention kind)
        The conductance at a time after programming.
    mapping : Mapping
    device : dict
        Where the device model came from (file, features, its provenance).
    provenance : dict
    """

    window: Window
    programming: TableProgramming
    defects: Defects = field(default_factory=Defects)
    read_noise: ReadNoise = field(default_factory=ReadNoise)
    periphery: DacAdc = field(default_factory=DacAdc)
    tile: Tile = field(default_factory=Tile)
    transfer: TransferModel | None = None
    retention: NoRetention = field(default_factory=NoRetention)
    mapping: Mapping = field(default_factory=Mapping)
    device: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.transfer is not None and not isinstance(self.transfer, TransferModel):
            try:
                self.transfer = as_transfer(self.transfer, "noise model: transfer")
            except TransferError as err:
                raise NoiseModelError(str(err)) from None

    # ------------------------------------------------------------------ parts, for the layers
    @property
    def dac(self) -> DAC:
        """The periphery's input DAC."""
        return self.periphery.dac

    @property
    def adc(self) -> ADC:
        """The periphery's column ADC."""
        return self.periphery.adc

    def programming_sampler(self, scheme: str | None = None, stuck: bool = True):
        """The training layers' programming-noise sampler (torch) for ``scheme`` (default the
        training scheme), with this model's stuck cells unless ``stuck`` is False."""
        return self.programming.torch_sampler(self.window, self.defects, scheme, stuck)

    def read_noise_sampler(self):
        """The layers' column read noise (torch)."""
        return self.read_noise.torch_sampler()

    def replace(self, **changes) -> "NoiseModel":
        """A copy with ``changes`` (field names, and ``dac`` / ``adc`` for the periphery's
        converters); not validated (call :meth:`validate`)."""
        dac, adc = changes.pop("dac", None), changes.pop("adc", None)
        if dac is not None or adc is not None:
            periphery = changes.get("periphery", self.periphery)
            changes["periphery"] = dataclasses.replace(
                periphery, dac=dac if dac is not None else periphery.dac,
                adc=adc if adc is not None else periphery.adc)
        return dataclasses.replace(self, **changes)

    def with_retention(self, retention) -> "NoiseModel":
        """A copy with another retention part (e.g. :class:`RelaxationRetention`)."""
        return dataclasses.replace(self, retention=retention).validate()

    def with_adc_range(self, i_max: float) -> "NoiseModel":
        """A copy whose ADC full scale is ``i_max`` (A); every other part shared."""
        return dataclasses.replace(self, periphery=self.periphery.with_adc_range(i_max))

    # ------------------------------------------------------------------ presets
    @classmethod
    def ideal(cls, g_min: float = 1e-6, g_max: float = 1e-4, rows: int = 64, cols: int = 64,
              v_max: float = 0.2) -> "NoiseModel":
        """No programming error, no read noise, no stuck cells, no DAC or ADC rounding, ideal
        crossbar: the analog layer then computes ``W x`` exactly (up to float rounding)."""
        levels = np.array([g_min, g_max])
        schemes = {m: ProgrammingTable.exact(m, levels, g_min, g_max) for m in METHODS}
        return cls(Window(g_min, g_max, v_max, "preset: ideal"),
                   TableProgramming(levels, schemes),
                   read_noise=ReadNoise(bandwidth=0.0),
                   periphery=DacAdc(DAC(None, v_max), ADC(None, 1.0, 0.0)),
                   tile=Tile(rows, cols, None),
                   provenance=provenance(command="NoiseModel.ideal()"))

    # ------------------------------------------------------------------ checks
    def validate(self, where: str = "noise model") -> "NoiseModel":
        """Check every field and their agreement; returns self.

        Raises
        ------
        NoiseModelError
            Naming the field and what was expected.
        """
        def fail(msg):
            raise NoiseModelError(f"{where}: {msg}")

        w = self.window
        if not (math.isfinite(w.g_min) and math.isfinite(w.g_max) and 0 < w.g_min < w.g_max):
            fail(f"window needs 0 < g_min < g_max, got g_min={w.g_min}, g_max={w.g_max} S")
        if not w.u_read > 0:
            fail(f"window.u_read must be > 0 V, got {w.u_read}")
        self.programming.validate(fail, w)
        d = self.defects
        for name in ("stuck_fraction", "outlier_fraction", "narrow_window_fraction"):
            v = getattr(d, name)
            if not 0 <= v <= 1:
                fail(f"defects.{name} must lie in [0, 1], got {v}")
        if not d.stuck_g >= 0:
            fail(f"defects.stuck_g must be >= 0 S, got {d.stuck_g}")
        self.read_noise.validate(fail)
        self.periphery.validate(fail)
        self.retention.validate(fail)
        t = self.tile
        if not (isinstance(t.rows, int) and isinstance(t.cols, int) and t.rows >= 1
                and t.cols >= 1):
            fail(f"tile needs integer rows, cols >= 1, got {t.rows!r} x {t.cols!r}")
        if t.r_wire is not None and not t.r_wire >= 0:
            fail(f"tile.r_wire must be >= 0 ohm or null, got {t.r_wire}")
        if self.mapping.kind != "differential_pair":
            fail(f"mapping.kind {self.mapping.kind!r} is not supported (differential_pair)")
        if self.transfer is not None:
            self._check_transfer(fail)
        return self

    def _check_transfer(self, fail) -> None:
        tm = self.transfer
        if (tm.rows, tm.cols) != (self.tile.rows, self.tile.cols):
            fail(f"the transfer model is for {tm.rows} x {tm.cols} tiles, the noise model's tile "
                 f"is {self.tile.rows} x {self.tile.cols}")
        if self.tile.r_wire is None or not np.isclose(tm.r_wire, self.tile.r_wire, rtol=1e-9,
                                                      atol=0):
            fail(f"the transfer model has r_wire {tm.r_wire} ohm, the tile {self.tile.r_wire}")
        if not np.isclose(tm.v_max, self.dac.v_max, rtol=1e-9, atol=0):
            fail(f"the transfer model has v_max {tm.v_max} V, the DAC {self.dac.v_max} V")
        span = tm.g_max - tm.g_min
        if (self.window.g_min < tm.g_min - 1e-6 * span
                or self.window.g_max > tm.g_max + 1e-6 * span):
            fail(f"the window [{self.window.g_min:.4g}, {self.window.g_max:.4g}] S reaches "
                 f"beyond the transfer fit's range [{tm.g_min:.4g}, {tm.g_max:.4g}] S")

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        from pyaimc.noise.aihwkit import to_aihwkit

        return {
            "schema": SCHEMA,
            "window": vars(self.window).copy(),
            "mapping": vars(self.mapping).copy(),
            "programming": self.programming.to_dict(),
            "defects": vars(self.defects).copy(),
            "read_noise": self.read_noise.to_dict(),
            "retention": self.retention.to_dict(),
            "periphery": self.periphery.to_dict(),
            "tile": vars(self.tile).copy(),
            "transfer": None if self.transfer is None else self.transfer.to_dict(),
            # derived, for users of aihwkit; ignored when reading
            "aihwkit": to_aihwkit(self),
            "device": self.device,
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as versioned JSON (``pyaimc.noise/2``), atomically."""
        self.validate()
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, doc: dict, where: str = "noise model") -> "NoiseModel":
        """Build and validate a model from its JSON document (``pyaimc.noise/1`` or ``/2``)."""
        if not isinstance(doc, dict) or doc.get("schema") not in READABLE:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise SchemaError(f"{where}: schema is {found!r}, expected one of {READABLE}")
        try:
            tile = doc["tile"]
            # pyaimc.noise/1 kept the DAC and ADC at the top level
            periphery = doc.get("periphery") or {"kind": "dac_adc", "dac": doc["dac"],
                                                 "adc": doc["adc"]}
            model = cls(
                window=Window(**doc["window"]),
                programming=build("programming", doc["programming"], "table", where),
                defects=Defects(**doc["defects"]),
                read_noise=build("read_noise", doc["read_noise"], "johnson_shot", where),
                periphery=build("periphery", periphery, "dac_adc", where),
                tile=Tile(tile["rows"], tile["cols"], tile.get("r_wire")),
                transfer=doc.get("transfer"),
                retention=build("retention", doc.get("retention", {}), "none", where),
                mapping=Mapping(**doc.get("mapping", {})),
                device=doc.get("device", {}),
                provenance=doc.get("provenance", {}),
            )
        except KeyError as err:
            raise NoiseModelError(f"{where}: missing field {err}") from None
        except NoiseModelError:
            raise
        except (TypeError, ValueError, AttributeError) as err:
            raise NoiseModelError(f"{where}: bad field ({type(err).__name__}: {err})") from None
        try:
            return model.validate(where)
        except NoiseModelError:
            raise
        except (TypeError, ValueError, AttributeError) as err:
            # a field of the wrong type (a string where a number belongs, null, a list)
            raise NoiseModelError(f"{where}: a field has the wrong type "
                                  f"({type(err).__name__}: {err})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NoiseModel":
        """Read a model written by :meth:`save`; other schemas or versions are rejected."""
        return cls.from_dict(read_json(path, READABLE), str(path))

    def to_aihwkit(self) -> dict:
        """Programming and read noise as aihwkit's inference noise models take them.

        See :func:`pyaimc.noise.aihwkit.to_aihwkit` for the mapping.
        """
        from pyaimc.noise.aihwkit import to_aihwkit

        return to_aihwkit(self)
