"""The fitted stochastic device model: ``DeviceModel.fit(data)`` -> ``.sample(...)``.

Generative structure (per feature f, device d, cycle n), in a working space that is log10 for
resistances and linear for voltages::

    x_n      ~ VAR(p) in standard-normal space, pooled over devices   (cycle-to-cycle)
    u_{d,n}  = T_f(x_{d,n,f})                                          (monotone marginal transform)
    v_{d,n}  = mu_{d,f} + sigma_{d,f} * u_{d,n}                        (device location and scale)
    (mu_d, log sigma_d) ~ Gaussian mixture, K chosen by BIC            (device-to-device)

This is the model class of the generative-ReRAM literature (Hennen et al., "Synaptogen",
IEEE TED 2024); every part here is fitted from data by this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyaimc.data.container import CycleData, DataError, exclude_stuck_cells
from pyaimc.device.copula import normal_space_targets
from pyaimc.device.iv import IVModel
from pyaimc.device.marginal import MarginalTransform
from pyaimc.device.mixture import DeviceMixture
from pyaimc.device.relaxation import RelaxationModel
from pyaimc.device.var import VARProcess
from pyaimc.io import provenance, read_json, write_json, write_npz

SCHEMA = "pyaimc.device/1"
MIN_DEVICES = 4
MIN_CYCLES = 20


def working_space(name: str) -> str:
    """``"log10"`` for resistances (``R_*``), ``"linear"`` otherwise."""
    return "log10" if name.startswith("R_") else "linear"


def to_working(name: str, values: np.ndarray) -> np.ndarray:
    return np.log10(values) if working_space(name) == "log10" else np.asarray(values, float)


def from_working(name: str, values: np.ndarray) -> np.ndarray:
    return np.power(10.0, values) if working_space(name) == "log10" else values


@dataclass
class DeviceModel:
    """Stochastic ReRAM device model, fitted from per-cycle switching features.

    Parameters
    ----------
    max_var_order : int
        Largest cycle-to-cycle VAR order tried (the order is chosen by ``var_criterion``).
    var_criterion : {"bic", "aic"}
    max_components : int
        Largest number of device populations tried (chosen by BIC).
    n_knots : int
        Knots of each marginal transform table.
    exclude_stuck : bool
        Exclude cells that do not switch (rule: :func:`pyaimc.data.exclude_stuck_cells`).
    window_correction : bool
        Correct the cycle-to-cycle and device statistics for the finite length of each device's
        record (see :meth:`VARProcess.fit`).

    Attributes (after ``fit``)
    --------------------------
    feature_names_, units_ : tuple of str
    marginals_ : list of MarginalTransform
    var_ : VARProcess
        Normalised to unit stationary variance.
    mixture_ : DeviceMixture
        Over ``theta = (mu_1..mu_F, log sigma_1..log sigma_F)`` in working space.
    iv_ : IVModel
        I-V and switching (fitted from sweeps, or the default).
    relaxation_ : RelaxationModel or None
        Conductance relaxation after programming (optional part, see :meth:`fit_relaxation`).
        A model may hold only this part (then the cycling attributes are empty).
    pulse_ : PulseModel or None
        Pulse response of a 1T1R cell (fitted from pulse records with :meth:`fit_pulses`);
        None for a cycling-only model.
    fit_info_ : dict
        Devices and cycles used, excluded cells, window correction figures.
    provenance_ : dict
    """

    max_var_order: int = 10
    var_criterion: str = "bic"
    max_components: int = 6
    n_knots: int = 81
    exclude_stuck: bool = True
    window_correction: bool = True

    feature_names_: tuple = field(default=(), init=False, repr=False)
    units_: tuple = field(default=(), init=False, repr=False)
    marginals_: list = field(default_factory=list, init=False, repr=False)
    var_: VARProcess | None = field(default=None, init=False, repr=False)
    mixture_: DeviceMixture | None = field(default=None, init=False, repr=False)
    iv_: IVModel | None = field(default=None, init=False, repr=False)
    relaxation_: RelaxationModel | None = field(default=None, init=False, repr=False)
    pulse_: "PulseModel | None" = field(default=None, init=False, repr=False)
    fit_info_: dict = field(default_factory=dict, init=False, repr=False)
    provenance_: dict = field(default_factory=dict, init=False, repr=False)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: CycleData, iv: IVModel | None = None,
            rng: np.random.Generator | None = None, source_info: dict | None = None
            ) -> "DeviceModel":
        """Fit every part of the model to ``data``.

        Parameters
        ----------
        data : CycleData
            Cells x cycles x features, in SI units.
        iv : IVModel, optional
            I-V and switching description (e.g. :meth:`IVModel.fit_sweeps`); the default
            :meth:`IVModel.default` otherwise.
        rng : Generator, optional
            Seeds the mixture fit's initialisation.
        source_info : dict, optional
            Extra provenance (citation, command).

        Returns
        -------
        self
        """
        self._validate_params()
        rng = rng if rng is not None else np.random.default_rng(0)
        src = data.source or "data"
        if data.n_cycles < 3:
            # before the cell screens, which would otherwise report "0 usable cells"
            raise DataError(f"{src}: {data.n_cycles} cycle(s) per cell; the model needs each cell's "
                            f"cycle-to-cycle series (at least {MIN_CYCLES} cycles)")
        if self.exclude_stuck:
            data = exclude_stuck_cells(data)
        data = _exclude_constant_cells(data)
        if data.n_cells < MIN_DEVICES:
            raise DataError(f"{src}: {data.n_cells} usable cells; the device-to-device "
                            f"distribution needs at least {MIN_DEVICES}")
        if data.n_cycles < max(MIN_CYCLES, self.max_var_order + 2):
            need = max(MIN_CYCLES, self.max_var_order + 2)
            hint = (f"; a smaller --max-var-order (now {self.max_var_order}) lowers that to "
                    f"{max(MIN_CYCLES, 2)}" if self.max_var_order + 2 > MIN_CYCLES else "")
            raise DataError(f"{src}: {data.n_cycles} cycles; need at least {need} for the "
                            f"cycle-to-cycle model (--max-var-order {self.max_var_order} needs "
                            f"{self.max_var_order + 2}){hint}")
        names = data.feature_names
        f = len(names)
        work = np.stack([to_working(n, data.values[:, :, k]) for k, n in enumerate(names)], -1)
        mu_hat = np.nanmean(work, axis=1)
        sd_hat = np.nanstd(work, axis=1)
        u = (work - mu_hat[:, None]) / sd_hat[:, None]
        self.marginals_ = [MarginalTransform.fit(u[:, :, k], n_knots=self.n_knots)
                           for k in range(f)]
        x = np.stack([self.marginals_[k].to_normal(u[:, :, k]) for k in range(f)], -1)
        x[np.isnan(u)] = np.nan
        # the data's correlations live in their own space; the VAR in normal space (NORTA)
        targets = normal_space_targets(u, sd_hat, self.marginals_, self.max_var_order)
        var = VARProcess.fit(x, self.max_var_order, self.var_criterion,
                             window_correction=self.window_correction,
                             target_correlation=targets)
        var = var.normalized()
        n_window = int(np.round(np.mean((~data.missing).all(axis=2).sum(axis=1))))
        if self.window_correction:
            # A device's sample std over its window underestimates its scale, and its sample mean
            # carries part of the slow cycle-to-cycle variation: correct both for the window.
            window_var = np.diagonal(var.expected_window_autocovariances(n_window, 0)[0])
            mean_var = var.window_mean_variance(n_window)
            sigma = sd_hat / np.sqrt(window_var)
            spread = np.var(mu_hat, axis=0)
            shrink = np.sqrt(np.clip(1 - np.mean(sigma**2, axis=0) * mean_var
                                     / np.where(spread > 0, spread, np.inf), 0.0, 1.0))
            mu = mu_hat.mean(axis=0) + shrink * (mu_hat - mu_hat.mean(axis=0))
        else:
            window_var = mean_var = np.ones(f)
            sigma, mu, shrink = sd_hat, mu_hat, np.ones(f)
        theta = np.concatenate([mu, np.log(sigma)], axis=1)
        self.mixture_ = DeviceMixture.fit(theta, self.max_components, rng=rng)
        self.var_ = var
        self.iv_ = iv if iv is not None else IVModel.default()
        self.feature_names_ = tuple(names)
        self.units_ = tuple(data.units)
        self.fit_info_ = {
            "source": src,
            "n_devices": data.n_cells,
            "n_cycles": data.n_cycles,
            "n_missing": int(data.missing.sum()),
            "excluded": [{"cell": e.cell_id, "file_row": e.index + 1, "reason": e.reason}
                         for e in data.excluded],
            "var_order": var.order,
            "var_spectral_radius": var.spectral_radius(),
            "n_components": self.mixture_.n_components,
            "component_weights": self.mixture_.weights.tolist(),
            "window_cycles": n_window,
            "window_variance": window_var.tolist(),
            "window_mean_variance": np.asarray(mean_var).tolist(),
            "location_shrink": np.asarray(shrink).tolist(),
        }
        self.provenance_ = provenance(source=src, **(source_info or {}))
        return self

    def fit_pulses(self, pulses, progress: bool = False, **params) -> "DeviceModel":
        """Fit the pulse-response part from pulse records (see :mod:`pyaimc.device.pulse`).

        Parameters
        ----------
        pulses : list of PulseData
            One entry per source file.
        progress : bool
        **params
            :class:`~pyaimc.device.pulse.PulseModel` parameters (``head``, ``hidden``,
            ``epochs``, ``seed``, ...).

        Returns
        -------
        self
        """
        from pyaimc.device.pulse import PulseModel

        self.pulse_ = PulseModel(**params).fit(pulses, progress=progress)
        return self

    def _validate_params(self) -> None:
        if int(self.max_var_order) < 0:
            raise ValueError(f"max_var_order must be >= 0, got {self.max_var_order}")
        if self.var_criterion not in ("bic", "aic"):
            raise ValueError(f"var_criterion must be 'bic' or 'aic', got {self.var_criterion!r}")
        if int(self.max_components) < 1:
            raise ValueError(f"max_components must be >= 1, got {self.max_components}")
        if int(self.n_knots) < 3:
            raise ValueError(f"n_knots must be >= 3, got {self.n_knots}")

    def fit_relaxation(self, data, bake=None, traces=None, **params) -> "DeviceModel":
        """Fit the relaxation part (:class:`~pyaimc.device.relaxation.RelaxationModel`).

        Parameters
        ----------
        data : RelaxationData
        bake : BakeData, optional
            Adds the temperature dependence.
        traces : ReadTraces, optional
            Adds 1/f read noise.
        **params
            Passed to :class:`RelaxationModel` (``n_knots``, ``min_neighbours``, ...).

        Returns
        -------
        self
        """
        self.relaxation_ = RelaxationModel(**params).fit(data, bake=bake, traces=traces)
        if not self.provenance_:
            self.provenance_ = provenance(source=data.source)
        return self

    @property
    def has_cycling(self) -> bool:
        """Whether the cycling part (marginals, mixture, VAR, I-V) is fitted."""
        return self.var_ is not None

    def _check_fitted(self) -> None:
        if self.var_ is None:
            if self.relaxation_ is not None:
                raise RuntimeError("this DeviceModel holds only a relaxation part (fitted from "
                                   "relaxation records); cycling needs fit(data) on cycling data")
            raise RuntimeError("this DeviceModel is not fitted yet; call fit(data) or load(path)")

    # ------------------------------------------------------------------ sampling
    @property
    def n_features(self) -> int:
        return len(self.feature_names_)

    def sample_devices(self, n_devices: int, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw device parameters: (mu (n, F), sigma (n, F), component (n,)), working space."""
        self._check_fitted()
        theta, comp = self.mixture_.sample(int(n_devices), rng)
        f = self.n_features
        return theta[:, :f], np.exp(theta[:, f:]), comp

    def normal_to_features(self, x: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                           out: np.ndarray | None = None) -> np.ndarray:
        """Map VAR values ``x`` (..., F) of devices with ``mu``, ``sigma`` (..., F) to SI units."""
        res = np.empty(np.broadcast_shapes(x.shape, mu.shape), dtype=x.dtype) if out is None else out
        for k, name in enumerate(self.feature_names_):
            u = self.marginals_[k].to_data(x[..., k])
            v = mu[..., k] + sigma[..., k] * u
            res[..., k] = from_working(name, v)
        return res

    def sample(self, n_devices: int, n_cycles: int, rng: np.random.Generator,
               dtype=np.float64, return_components: bool = False, progress: bool = False):
        """Draw feature sequences of new devices.

        Parameters
        ----------
        n_devices, n_cycles : int
        rng : Generator
        dtype : numpy dtype
            Of the returned arrays (float32 halves memory for big samples).
        return_components : bool
            Also return each device's mixture component.
        progress : bool
            Show a progress bar over cycles.

        Returns
        -------
        dict name -> ndarray (n_devices, n_cycles), in ohms and volts
            (and the components (n_devices,) when asked).
        """
        self._check_fitted()
        if int(n_devices) < 1 or int(n_cycles) < 1:
            raise ValueError(f"n_devices and n_cycles must be >= 1, got {n_devices}, {n_cycles}")
        mu, sigma, comp = self.sample_devices(n_devices, rng)
        x = self.var_.simulate(int(n_devices), int(n_cycles), rng, dtype=dtype, progress=progress)
        out = {}
        for k, name in enumerate(self.feature_names_):
            u = self.marginals_[k].to_data(x[:, :, k])
            v = (mu[:, k:k + 1] + sigma[:, k:k + 1] * u).astype(dtype, copy=False)
            out[name] = from_working(name, v).astype(dtype, copy=False)
        return (out, comp) if return_components else out

    def sample_to_npz(self, path: str | os.PathLike, n_devices: int, n_cycles: int,
                      rng: np.random.Generator, seed: int | None = None) -> Path:
        """Write a sample in the layout of ``synaptogen_ref/features.npz`` (one array per feature)."""
        out, comp = self.sample(n_devices, n_cycles, rng, dtype=np.float32, return_components=True)
        return write_npz(path, **out, gmm_component=comp.astype(np.int8))

    def cells(self, n_cells: int, rng: np.random.Generator, **kwargs):
        """A :class:`~pyaimc.device.cells.CellArray` of ``n_cells`` new devices."""
        from pyaimc.device.cells import CellArray

        return CellArray(self, n_cells, rng, **kwargs)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        if self.var_ is None and self.relaxation_ is None:
            self._check_fitted()
        doc = {
            "schema": SCHEMA,
            "params": {"max_var_order": self.max_var_order, "var_criterion": self.var_criterion,
                       "max_components": self.max_components, "n_knots": self.n_knots,
                       "exclude_stuck": self.exclude_stuck,
                       "window_correction": self.window_correction},
        }
        if self.var_ is not None:
            doc.update({
                "features": [{"name": n, "unit": u, "space": working_space(n)}
                             for n, u in zip(self.feature_names_, self.units_)],
                "marginals": [m.to_dict() for m in self.marginals_],
                "var": self.var_.to_dict(),
                "mixture": self.mixture_.to_dict(),
                "iv": self.iv_.to_dict(),
                "fit": self.fit_info_,
            })
        if self.relaxation_ is not None:
            # optional part: files without it (older ones) load as before
            doc["relaxation"] = self.relaxation_.to_dict()
        if self.pulse_ is not None:
            # optional part: files without it (older ones) load as before
            doc["pulse"] = self.pulse_.to_dict()
        doc["provenance"] = self.provenance_
        return doc

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model as versioned JSON (``pyaimc.device/1``), atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, doc: dict, where: str = "model") -> "DeviceModel":
        if "var" not in doc and "relaxation" in doc:
            try:
                model = cls(**doc["params"])
            except (KeyError, TypeError) as err:
                raise DataError(f"{where}: not a valid {SCHEMA} model ({type(err).__name__}: "
                                f"{err})") from None
            model.relaxation_ = RelaxationModel.from_dict(doc["relaxation"], f"{where}: relaxation")
            model.provenance_ = doc.get("provenance", {})
            return model
        try:
            model = cls(**doc["params"])
            model.feature_names_ = tuple(f["name"] for f in doc["features"])
            model.units_ = tuple(f["unit"] for f in doc["features"])
            model.marginals_ = [MarginalTransform.from_dict(m) for m in doc["marginals"]]
            model.var_ = VARProcess.from_dict(doc["var"])
            model.mixture_ = DeviceMixture.from_dict(doc["mixture"])
            model.iv_ = IVModel.from_dict(doc["iv"])
            if doc.get("pulse") is not None:
                # optional: files written before the pulse part existed load without it
                from pyaimc.device.pulse import PulseModel

                model.pulse_ = PulseModel.from_dict(doc["pulse"], where)
            model.fit_info_ = doc.get("fit", {})
            model.provenance_ = doc.get("provenance", {})
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise DataError(f"{where}: not a valid {SCHEMA} model ({type(err).__name__}: {err})"
                            ) from None
        try:
            f = len(model.feature_names_)
            if (len(model.marginals_) != f or model.var_.n_features != f
                    or model.mixture_.means.shape[1] != 2 * f):
                raise DataError(f"{where}: features, marginals, VAR and mixture disagree in size")
            check_parameters(model, doc, where)
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise DataError(f"{where}: a field has the wrong type or shape "
                            f"({type(err).__name__}: {err})") from None
        if doc.get("relaxation") is not None:
            model.relaxation_ = RelaxationModel.from_dict(doc["relaxation"], f"{where}: relaxation")
        return model

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DeviceModel":
        """Read a model written by :meth:`save`.

        ``path`` may also name a model shipped with pyaimc (``"example"``,
        ``"radar_cycling-4-24-20"``, ...; see :func:`shipped_model_names`) when no such file
        exists.
        """
        p = Path(path)
        if not p.exists() and p.suffix == "" and len(p.parts) == 1:
            p = shipped_model(str(path)) if str(path) in shipped_model_names() else p
        return cls.from_dict(read_json(p, SCHEMA), str(path))


def _exclude_constant_cells(data: CycleData) -> CycleData:
    with np.errstate(invalid="ignore"):
        work = np.stack([to_working(n, data.values[:, :, k])
                         for k, n in enumerate(data.feature_names)], -1)
        sd = np.nanstd(work, axis=1)
        count = (~data.missing).sum(axis=1)
    reasons, keep = [], np.ones(data.n_cells, dtype=bool)
    for i in range(data.n_cells):
        bad = [data.feature_names[k] for k in range(data.n_features)
               if count[i, k] < 3 or not sd[i, k] > 0]
        keep[i] = not bad
        reasons.append("" if not bad else f"constant or fewer than 3 values: {', '.join(bad)}")
    return data if keep.all() else data.select_cells(keep, reasons)


#: plausible component means per feature in working space (log10 ohm, V): the data ranges of
#: :mod:`pyaimc.data.plausibility`
_MEAN_RANGE = {"R": (1.0, 10.0), "U_SET": (-20.0, 0.0), "U_RESET": (0.0, 20.0)}
#: largest plausible within-device spread in working space (decades of resistance, V)
_SIGMA_MAX = 5.0


def _check_chol(chol: np.ndarray, field: str, fail) -> None:
    """A lower Cholesky factor: finite, lower-triangular, positive diagonal."""
    chol = np.asarray(chol, dtype=np.float64)
    if not np.all(np.isfinite(chol)):
        fail(f"{field} holds non-finite values")
    scale = max(float(np.max(np.abs(chol))), 1e-300)
    if np.any(np.abs(np.triu(chol, 1)) > 1e-12 * scale):
        fail(f"{field} is not lower-triangular (an edited Cholesky factor?)")
    if not np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0):
        fail(f"{field} has a diagonal entry <= 0: the covariance is not positive definite")


def check_parameters(model, doc: dict, where: str = "model") -> None:
    """Check a loaded model's parameters for physics, not only shape.

    Mixture weights non-negative and summing to 1, component means of plausible devices,
    Cholesky factors lower-triangular with positive diagonals (positive definite covariances), a
    stable cycle-to-cycle VAR (spectral radius < 1), increasing marginal tables, a positive
    temperature. Raises :class:`DataError` naming the file and the field.
    """
    def fail(msg):
        raise DataError(f"{where}: {msg}")

    raw_w = np.asarray(doc["mixture"]["weights"], dtype=np.float64)
    if not np.all(np.isfinite(raw_w)) or np.any(raw_w < 0):
        fail(f"mixture.weights must be finite and >= 0, got {raw_w.tolist()}")
    if abs(raw_w.sum() - 1.0) > 1e-6:
        fail(f"mixture.weights sum to {raw_w.sum():.6g}, expected 1")
    mix = model.mixture_
    if not np.all(np.isfinite(mix.means)):
        fail("mixture.means holds non-finite values")
    f = len(model.feature_names_)
    for k, name in enumerate(model.feature_names_):
        key = "R" if name.startswith("R_") else name
        lo, hi = _MEAN_RANGE.get(key, (-np.inf, np.inf))
        mu = mix.means[:, k]
        if np.any((mu < lo) | (mu > hi)):
            unit = "log10 ohm" if key == "R" else "V"
            fail(f"mixture.means: a component's mean {name} = {mu[(mu < lo) | (mu > hi)][0]:.6g} "
                 f"{unit} is outside the plausible {lo:g} .. {hi:g} {unit}")
        sig = np.exp(mix.means[:, f + k])
        if np.any(sig > _SIGMA_MAX):
            fail(f"mixture.means: a component's spread of {name} is {sig.max():.3g} (working "
                 f"units), more than {_SIGMA_MAX:g}")
    for c in range(mix.n_components):
        _check_chol(mix.chols[c], f"mixture.chols[{c}]", fail)
    var = model.var_
    if not np.all(np.isfinite(var.coefs)):
        fail("var.coefs holds non-finite values")
    _check_chol(var.noise_chol, "var.noise_chol", fail)
    try:
        radius = var.spectral_radius()
    except np.linalg.LinAlgError as err:
        fail(f"var.coefs: no eigenvalues ({err})")
    if not radius < 1.0:
        fail(f"var: the cycle-to-cycle process is unstable (spectral radius {radius:.4g} >= 1)")
    for k, m in enumerate(model.marginals_):
        if not (np.all(np.isfinite(m.x_knots)) and np.all(np.isfinite(m.u_knots))
                and np.all(np.diff(m.x_knots) > 0) and np.all(np.diff(m.u_knots) > 0)):
            fail(f"marginals[{k}] ({model.feature_names_[k]}): knots must be finite and "
                 f"strictly increasing")
    iv = model.iv_
    if not (np.isfinite(iv.temperature) and iv.temperature > 0):
        fail(f"iv.temperature must be > 0 K, got {iv.temperature}")
    if not (np.all(np.isfinite(iv.lrs_coefs)) and np.all(np.isfinite(iv.hrs_coefs))):
        fail("iv envelope coefficients hold non-finite values")


#: the fitted models shipped inside the package (``make calibration`` refits them)
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models"


def shipped_model(name: str) -> Path:
    """Path of a fitted model shipped with pyaimc (``"example"``, ``"synaptogen_ref"``,
    ``"radar_cycling-4-24-20"``, ...); :func:`shipped_model_names` lists them.

    Raises
    ------
    FileNotFoundError
        Naming the shipped models when ``name`` is none of them.
    """
    path = SHIPPED_MODELS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped model {name!r}; shipped: "
                                f"{', '.join(shipped_model_names())}")
    return path


def shipped_model_names() -> list[str]:
    """Names of the fitted models shipped with pyaimc."""
    return sorted(p.stem for p in SHIPPED_MODELS.glob("*.json"))
