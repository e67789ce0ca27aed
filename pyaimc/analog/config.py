"""Which non-idealities an analog layer applies: :class:`AnalogConfig` and its presets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AnalogConfig:
    """Which non-idealities the layer applies (all from its noise model).

    Attributes
    ----------
    programming_noise : bool
        Sample programming error (training: per mini-batch; :func:`program`: once).
    programming_method : {"write_verify", "one_shot"} or None
        Write scheme whose statistics are sampled; None: the noise model's training method.
    stuck_cells : bool
        Include the noise model's stuck cells in programming.
    read_noise : bool
        Johnson and shot noise on every product.
    dac, adc : bool
        Quantise inputs and column currents with the noise model's DAC and ADC.
    transfer : bool
        Apply the noise model's crossbar transfer model (IR drop, non-linearity, saturation).
    input_scaling : {"abs_max", "fixed"}
        ``"abs_max"``: each input vector is scaled so its largest magnitude is ``v_max``
        (digital scale, multiplied back after the ADC); ``"fixed"``: inputs are divided by
        ``input_range`` and clipped to [-1, 1].
    input_range : float
        For ``"fixed"`` scaling.
    t_inference : float
        Time after programming at which the programmed conductances are read, s (the noise
        model's retention part drifts them; 0: at the instant of programming).
    drift_compensation : bool
        Global drift compensation: right after programming and again at ``t_inference`` each
        tile is read with every row at the full input (a reference read: noise-free, ideal
        crossbar); its outputs are multiplied by the ratio of the two reads' summed column-pair
        magnitudes (the read-out gain a chip calibrates, as aihwkit's global compensation).
    t_train : (float, float) or None
        Hardware-aware training samples a time after programming per mini-batch, log-uniform
        in this range (s), and drifts the sampled conductances to it (straight-through); None:
        training sees the instant of programming.
    """

    programming_noise: bool = True
    programming_method: str | None = None
    stuck_cells: bool = True
    read_noise: bool = True
    dac: bool = True
    adc: bool = True
    transfer: bool = True
    input_scaling: str = "abs_max"
    input_range: float = 1.0
    t_inference: float = 0.0
    drift_compensation: bool = False
    t_train: tuple | None = None

    def __post_init__(self) -> None:
        if self.input_scaling not in ("abs_max", "fixed"):
            raise ValueError(f"input_scaling must be 'abs_max' or 'fixed', got "
                             f"{self.input_scaling!r}")
        if not self.input_range > 0:
            raise ValueError(f"input_range must be > 0, got {self.input_range}")
        if not self.t_inference >= 0:
            raise ValueError(f"t_inference must be >= 0 s, got {self.t_inference}")
        if self.t_train is not None:
            t = tuple(float(x) for x in self.t_train)
            if len(t) != 2 or not 0 < t[0] <= t[1]:
                raise ValueError(f"t_train must be (t_min, t_max) with 0 < t_min <= t_max s, "
                                 f"got {self.t_train}")
            self.t_train = t

    @classmethod
    def hardware(cls) -> "AnalogConfig":
        """Every non-ideality of the noise model (the default)."""
        return cls()

    @classmethod
    def ideal(cls) -> "AnalogConfig":
        """None: the layer computes ``x @ w.T + b`` through the conductance mapping."""
        return cls(programming_noise=False, stuck_cells=False, read_noise=False, dac=False,
                   adc=False, transfer=False)

    @classmethod
    def noise_only(cls) -> "AnalogConfig":
        """Programming and read noise, but exact converters and an ideal crossbar."""
        return cls(dac=False, adc=False, transfer=False)
