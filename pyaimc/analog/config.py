"""Which non-idealities an analog layer applies: :class:`AnalogConfig` and its presets."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    input_scaling : {"abs_max", "fixed", "learned"}
        ``"abs_max"``: each input vector is scaled so its largest magnitude is ``v_max``
        (digital scale, multiplied back after the ADC); ``"fixed"``: inputs are divided by
        ``input_range`` and clipped to [-1, 1]; ``"learned"``: as ``"fixed"`` with a range per
        layer that is a trained parameter, set from the first ``input_range_init_batches``
        training reads (mean of ``input_range_init_std`` standard deviations of the inputs;
        all-zero inputs skipped), then learned (its gradient comes from the clipped inputs, plus a decay that shrinks it
        while at least ``input_range_min_inside`` of the inputs lie inside).
    input_range : float
        For ``"fixed"`` scaling (and the learned range before it is set).
    input_range_init_batches, input_range_init_std, input_range_decay, input_range_min_inside
        For ``"learned"`` (see above).
    mapping : str
        Weight-to-conductance mapping (:mod:`pyaimc.analog.weight_maps`: ``"differential_pair"``,
        ``"single_device"``, ``"n_pairs"``, ``"optimised_pairs"``), with ``mapping_options``.
    weight_clip : {None, "fixed", "sigma"}
        Clip the weights before mapping: at ``+-weight_clip_value`` (``"fixed"``) or at
        ``weight_clip_value`` standard deviations of the layer's weights (``"sigma"``); the
        output scale ``s_o`` then follows the clipped weights, so outliers no longer squeeze the
        other weights into the low end of the window.
    learn_out_scale : bool
        The output channel scales ``s_o`` become trained parameters (initialised to
        ``max |w_o|``): weights beyond them are clipped, and the gradient trades that clipping
        against programming and read noise, which grow with ``s_o``.
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
    normal_pool : bool
        Training passes take their normals (programming error, read noise) from a pool the
        layer draws ahead and reads at a random place each step, a sixteenth of it redrawn
        per step (:class:`pyaimc.noise.torch_ops.NormalPool`): within a step the normals are
        independent N(0, 1) draws, but successive steps reuse most of the pool's values at
        other positions, so layer-wide averages of the noise vary less from step to step than
        with fresh draws. On the CPU fresh normals cost about as much as the layer's matrix
        products. False: fresh normals every step. Evaluation and :func:`program` always draw
        fresh ones.
    products : {"auto", "bfloat16", "float32"}
        Precision of the tile products in training passes (the forward product, the read-noise
        variance and both gradients; :mod:`pyaimc.analog.half`): ``"bfloat16"`` rounds their
        operands and results to bf16 (8 significant bits; sums accumulated in float32; the DAC
        codes exact), about four times faster on a CPU with native bf16 products;
        ``"float32"`` the layer's dtype; ``"auto"`` bf16 where the CPU has native bf16
        products (AVX512-BF16 or AMX) and the layer has programming or read noise (the
        rounding is far below either), else float32. bf16 applies to float32 layers on the CPU
        with the compiled kernels, the differential pair, an ideal crossbar or the linear
        IR-drop model; evaluation, :func:`program` and deployment always multiply in the
        layer's dtype.
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
    mapping: str = "differential_pair"
    mapping_options: dict = field(default_factory=dict)
    weight_clip: str | None = None
    weight_clip_value: float = 3.0
    learn_out_scale: bool = False
    input_range_init_batches: int = 10
    input_range_init_std: float = 3.0
    input_range_decay: float = 0.01
    input_range_min_inside: float = 0.95
    normal_pool: bool = True
    products: str = "auto"

    def __post_init__(self) -> None:
        if self.products not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"products must be 'auto', 'bfloat16' or 'float32', got "
                             f"{self.products!r}")
        if self.input_scaling not in ("abs_max", "fixed", "learned"):
            raise ValueError(f"input_scaling must be 'abs_max', 'fixed' or 'learned', got "
                             f"{self.input_scaling!r}")
        if self.weight_clip not in (None, "fixed", "sigma"):
            raise ValueError(f"weight_clip must be None, 'fixed' or 'sigma', got "
                             f"{self.weight_clip!r}")
        if not self.weight_clip_value > 0:
            raise ValueError(f"weight_clip_value must be > 0, got {self.weight_clip_value}")
        if not (isinstance(self.input_range_init_batches, int)
                and self.input_range_init_batches >= 0):
            raise ValueError("input_range_init_batches must be an integer >= 0, got "
                             f"{self.input_range_init_batches!r}")
        if not (self.input_range_init_std > 0 and self.input_range_decay >= 0
                and 0 <= self.input_range_min_inside <= 1):
            raise ValueError("input_range_init_std must be > 0, input_range_decay >= 0 and "
                             "input_range_min_inside in [0, 1]")
        from pyaimc.analog.weight_maps import WEIGHT_MAPS

        if self.mapping not in WEIGHT_MAPS:
            raise ValueError(f"mapping {self.mapping!r} is not registered (known: "
                             f"{', '.join(sorted(WEIGHT_MAPS))})")
        if not isinstance(self.mapping_options, dict):
            raise ValueError(f"mapping_options must be a dict, got "
                             f"{type(self.mapping_options).__name__}")
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

    @classmethod
    def trained_ranges(cls) -> "AnalogConfig":
        """Every non-ideality, with the training tools aihwkit users know: weights clipped at
        3 standard deviations of each layer's weights, learned input ranges (DAC) and learned
        output scales."""
        return cls(weight_clip="sigma", weight_clip_value=3.0, input_scaling="learned",
                   learn_out_scale=True)

    @classmethod
    def preset(cls, name: str) -> "AnalogConfig":
        """A preset by name: ``hardware``, ``ideal``, ``noise_only``, ``trained_ranges``."""
        names = ("hardware", "ideal", "noise_only", "trained_ranges")
        if name not in names:
            raise ValueError(f"unknown AnalogConfig preset {name!r} (known: {', '.join(names)})")
        return getattr(cls, name)()
