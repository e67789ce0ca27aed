"""S4D: a diagonal state-space layer with a convolution mode and a recurrent step mode.

Each of the ``H`` channels is an independent single-input single-output linear system with
``N/2`` complex modes (``N = d_state`` real state variables)::

    x'(t) = A x(t) + B u(t),   y(t) = 2 Re(C x(t)) + D u(t),   A = diag(a_n), Re a_n < 0

(the conjugate modes are implied by taking twice the real part). Discretized with step ``dt``
(ZOH or bilinear) it becomes ``x_k = Abar x_{k-1} + Bbar u_k``, ``y_k = 2 Re(C x_k) + D u_k``,
whose impulse response is the kernel ``K_l = 2 Re(C Bbar Abar^l)``. Training convolves with
``K`` (FFT, all steps at once); deployment runs the recurrence one step at a time. Both are the
same function of the same (quantized) ``Abar, Bbar, C``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyaimc.s4d.quant import ActQuantizer, Precision, WeightQuantizer

INITS = ("lin", "inv")
DISCRETIZATIONS = ("zoh", "bilinear")


def init_A(d_state: int, init: str) -> torch.Tensor:
    """Continuous-time diagonal ``A`` for one channel, ``d_state // 2`` complex values.

    ``"lin"`` (S4D-Lin): ``a_n = -1/2 + i pi n``, frequencies spaced linearly.
    ``"inv"`` (S4D-Inv): ``a_n = -1/2 + i (N/pi) (N/(2n+1) - 1)``, frequencies falling like 1/n.
    """
    n = torch.arange(d_state // 2, dtype=torch.float64)
    if init == "lin":
        imag = math.pi * n
    elif init == "inv":
        imag = d_state / math.pi * (d_state / (2 * n + 1) - 1)
    else:
        raise ValueError(f"init: must be one of {INITS}, got {init!r}")
    return torch.complex(torch.full_like(n, -0.5), imag)


def discretize(dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, method: str):
    """``(Abar, Bbar)`` for step ``dt`` ``(H, 1)`` and complex ``A, B`` ``(H, N/2)``."""
    dtA = dt * A
    if method == "zoh":
        Abar = torch.exp(dtA)
        return Abar, (Abar - 1) / A * B
    if method == "bilinear":
        return (1 + dtA / 2) / (1 - dtA / 2), dt / (1 - dtA / 2) * B
    raise ValueError(f"discretization: must be one of {DISCRETIZATIONS}, got {method!r}")


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(x.contiguous())


def block_kernel(blocks: torch.Tensor, Bbar: torch.Tensor, C: torch.Tensor, L: int
                 ) -> torch.Tensor:
    """Kernel ``K_l = sum_n 2 Re(C_n z_nl)`` with ``[Re z, Im z]_nl = M_n^l [Re b_n, Im b_n]``.

    The general real form of :meth:`S4D.kernel` for 2x2 blocks ``M`` ``(H, N/2, 2, 2)``
    (complex ``Bbar``, ``C`` of shape ``(H, N/2)``). Powers by doubling: ``log2(L)`` batched
    2x2 products instead of ``L`` sequential ones.
    """
    v = torch.view_as_real(Bbar).unsqueeze(-1)                      # (H, N/2, 2, 1)
    power = blocks
    while v.shape[-1] < L:
        v = torch.cat([v, power @ v], dim=-1)                       # M^0..M^(2k-1) b
        if v.shape[-1] < L:
            power = power @ power
    v = v[..., :L]
    c = torch.view_as_real(C)
    # 2 Re(c z) = 2 (Re c Re z - Im c Im z)
    return 2 * (torch.einsum("hn,hnl->hl", c[..., 0], v[:, :, 0])
                - torch.einsum("hn,hnl->hl", c[..., 1], v[:, :, 1]))


class S4D(nn.Module):
    """Diagonal state-space layer on ``(batch, H, L)`` sequences.

    Parameters
    ----------
    d_model : int
        Number of channels ``H``.
    d_state : int
        Real state size per channel ``N`` (even): ``N/2`` complex modes.
    init : {"lin", "inv"}
    discretization : {"zoh", "bilinear"}
    dt_min, dt_max : float
        Range of the log-uniform initial step sizes (in units of the sequence step).
    a_precision, b_precision, c_precision : None, int or "ternary"
        Weight precision of the discrete ``Abar``, ``Bbar`` and ``C`` (one scale per channel).
    act_bits, state_bits : int or None
        DAC precision of the input ``u`` and of the state ``x``. Quantizing the state needs the
        state itself, so with ``state_bits`` set the forward pass runs the recurrence.

    Notes
    -----
    ``self.quant`` maps ``"A"``, ``"B"``, ``"C"`` to modules applied to the real views (shape
    ``(H, N/2, 2)``) of ``Abar``, ``Bbar`` and ``C``: the values a crossbar would hold. Replacing
    one (say by quantizer followed by a programming-noise model) changes both modes alike.
    The ``"A"`` module may also return real 2x2 blocks ``(H, N/2, 2, 2)`` acting on
    ``[Re x, Im x]``: a programmed tile whose four entries carry independent errors is no longer
    a complex number (a scaled rotation). Kernel and recurrence then use the blocks as they are.
    """

    def __init__(self, d_model: int, d_state: int = 64, init: str = "lin",
                 discretization: str = "zoh", dt_min: float = 1e-3, dt_max: float = 1e-1,
                 a_precision: Precision = None, b_precision: Precision = None,
                 c_precision: Precision = None, act_bits: int | None = None,
                 state_bits: int | None = None):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state: must be an even integer >= 2, got {d_state}")
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization: must be one of {DISCRETIZATIONS}, "
                             f"got {discretization!r}")
        self.discretization = discretization
        H = d_model
        A = init_A(d_state, init).to(torch.complex64).expand(H, -1)
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.log(-A.real).clone())  # keeps Re a < 0 (stable)
        self.A_imag = nn.Parameter(A.imag.clone())
        self.B = nn.Parameter(torch.view_as_real(torch.ones_like(A, dtype=torch.cfloat)).clone())
        self.C = nn.Parameter(torch.randn(H, d_state // 2, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(H))
        self.quant = nn.ModuleDict({part: WeightQuantizer(p, channel_dim=0) for part, p in
                                    (("A", a_precision), ("B", b_precision), ("C", c_precision))})
        self.input_quant = ActQuantizer(act_bits)
        self.state_quant = ActQuantizer(state_bits)

    @property
    def d_model(self) -> int:
        return self.log_dt.shape[0]

    @property
    def d_state(self) -> int:
        return 2 * self.A_imag.shape[1]

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The (quantized) ``Abar, Bbar, C``: complex, each of shape ``(H, N/2)``.

        ``Abar`` is real 2x2 blocks ``(H, N/2, 2, 2)`` instead when the ``"A"`` module returns
        blocks (see the class notes).
        """
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        dt = torch.exp(self.log_dt).unsqueeze(-1)
        Abar, Bbar = discretize(dt, A, _as_complex(self.B), self.discretization)
        q = self.quant
        Abar = q["A"](torch.view_as_real(Abar))
        return (Abar if Abar.dim() == 4 else _as_complex(Abar),
                _as_complex(q["B"](torch.view_as_real(Bbar))),
                _as_complex(q["C"](self.C)))

    def kernel(self, L: int) -> torch.Tensor:
        """Convolution kernel ``K_l = 2 Re(sum_n C_n Bbar_n Abar_n^l)``, shape ``(H, L)``."""
        Abar, Bbar, C = self.discrete()
        if Abar.dim() == 4:
            return block_kernel(Abar, Bbar, C, L)
        # Powers by repeated multiplication, as the recurrence does (also exact for Abar = 0).
        powers = torch.cumprod(Abar.unsqueeze(-1).expand(-1, -1, L - 1), dim=-1)
        powers = torch.cat([torch.ones_like(Abar).unsqueeze(-1), powers], dim=-1)
        return 2 * torch.einsum("hn,hnl->hl", C * Bbar, powers).real

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``y = K * u + D u`` for ``u`` of shape ``(batch, H, L)``."""
        u = self.input_quant(u)
        if self.state_quant.bits is not None:
            return self._scan(u)
        L = u.shape[-1]
        k_f = torch.fft.rfft(self.kernel(L), n=2 * L)
        u_f = torch.fft.rfft(u, n=2 * L)
        return torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L] + self.D.unsqueeze(-1) * u

    def _scan(self, u: torch.Tensor) -> torch.Tensor:
        # In training the state quantizer's range follows every step's max|x|.
        x = self.initial_state(u.shape[0], dtype=u.dtype)
        matrices = self.discrete()
        ys = []
        for k in range(u.shape[-1]):
            y, x = self._recur(u[..., k], x, *matrices)
            ys.append(y)
        return torch.stack(ys, dim=-1)

    def _recur(self, u, x, Abar, Bbar, C):
        if Abar.dim() == 4:
            x = _as_complex(torch.einsum("hnij,bhnj->bhni", Abar, torch.view_as_real(x)))
            x = x + Bbar * u.unsqueeze(-1)
        else:
            x = Abar * x + Bbar * u.unsqueeze(-1)
        x = _as_complex(self.state_quant(torch.view_as_real(x)))
        return 2 * torch.einsum("hn,bhn->bh", C, x).real + self.D * u, x

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Zero complex state, shape ``(batch, H, N/2)``."""
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.d_state // 2, dtype=cdtype,
                           device=self.log_dt.device)

    def step(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrent step: input ``u`` ``(batch, H)``, state ``x`` -> ``(y, new state)``."""
        return self._recur(self.input_quant(u), x, *self.discrete())
