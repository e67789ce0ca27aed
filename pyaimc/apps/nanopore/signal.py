"""Raw nanopore signals simulated from a pore model.

A read is a stretch of a genome (either strand) pulled through the pore: each k-mer's level held
for a random dwell time, white noise on every sample, and each read's own gain and offset (pores
and channels differ: measured reads of the same k-mer sit at different currents until they are
normalised) plus a slow baseline drift within the read. The current is digitised as ONT devices
store it: int16 ADC counts with a calibration offset and range, ``pA = (raw + offset) * range /
digitisation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyaimc.apps.nanopore.pore import PoreModel, reverse_complement


@dataclass(frozen=True)
class SignalSettings:
    """How raw signals are simulated.

    Parameters
    ----------
    sample_rate : float
        Samples per second, Hz (R9.4 MinION: 4000).
    bases_per_second : float
        Translocation speed (R9.4: 450): mean dwell ``sample_rate / bases_per_second`` samples.
    dwell_shape : float
        Shape of the gamma distribution of dwell times (1: exponential; measured dwells are
        about that wide). Dwell times round to whole samples; a k-mer of zero samples is skipped.
    noise_scale : float
        Per-sample noise standard deviation as a multiple of the k-mer's ``level_stdv``.
    gain_sd : float
        Standard deviation of each read's relative gain (mean 1).
    offset_sd : float
        Standard deviation of each read's current offset, pA.
    drift_sd : float
        Standard deviation of each read's linear baseline drift, pA/s.
    digitisation, adc_range, adc_offset : float
        ADC: ``digitisation`` levels over ``adc_range`` pA, offset in ADC counts
        (MinION-like defaults).
    """

    sample_rate: float = 4000.0
    bases_per_second: float = 450.0
    dwell_shape: float = 1.5
    noise_scale: float = 1.0
    gain_sd: float = 0.06
    offset_sd: float = 4.0
    drift_sd: float = 3.0
    digitisation: float = 8192.0
    adc_range: float = 1467.6
    adc_offset: float = -240.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "bases_per_second", "dwell_shape", "digitisation",
                     "adc_range"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SignalSettings.{name} must be > 0, got {getattr(self, name)}")
        for name in ("noise_scale", "gain_sd", "offset_sd", "drift_sd"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SignalSettings.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def mean_dwell(self) -> float:
        """Mean samples per base."""
        return self.sample_rate / self.bases_per_second


@dataclass
class Read:
    """One raw read.

    Attributes
    ----------
    read_id : str
    raw : ndarray of int16
        ADC counts.
    offset, range, digitisation : float
        ADC calibration: ``pA = (raw + offset) * range / digitisation``.
    sample_rate : float
        Hz.
    genome, strand, start, end : optional
        Truth of a simulated read: genome name, ``"+"`` or ``"-"``, and the stretch of the
        forward strand it covers (0-based, end exclusive, bases).
    sequence : str, optional
        The bases read (5' to 3' of the strand read).
    boundaries : ndarray, optional
        Sample index where each k-mer's dwell starts (simulated reads only).
    """

    read_id: str
    raw: np.ndarray
    offset: float
    range: float
    digitisation: float
    sample_rate: float
    genome: str | None = None
    strand: str | None = None
    start: int | None = None
    end: int | None = None
    sequence: str | None = None
    boundaries: np.ndarray | None = field(default=None, repr=False)

    @property
    def current(self) -> np.ndarray:
        """The signal in pA."""
        return (self.raw.astype(np.float64) + self.offset) * (self.range / self.digitisation)


def simulate_signal(levels: np.ndarray, level_sd: np.ndarray, rng: np.random.Generator,
                    settings: SignalSettings = SignalSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Current (pA) of a sequence of k-mer levels, and the sample where each k-mer starts.

    Parameters
    ----------
    levels, level_sd : ndarray (n,)
        Mean and spread of each k-mer's current, pA.
    rng : numpy.random.Generator
    settings : SignalSettings

    Returns
    -------
    signal : ndarray (samples,)
        pA, with the read's gain, offset and drift applied.
    starts : ndarray (n,)
        First sample of each k-mer (a skipped k-mer starts where the next one does).
    """
    s = settings
    scale = s.mean_dwell / s.dwell_shape
    dwell = np.rint(rng.gamma(s.dwell_shape, scale, size=len(levels))).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(dwell)[:-1]])
    mean = np.repeat(levels, dwell)
    sd = np.repeat(level_sd * s.noise_scale, dwell)
    x = mean + sd * rng.standard_normal(mean.size)
    gain = 1.0 + s.gain_sd * rng.standard_normal()
    offset = s.offset_sd * rng.standard_normal()
    drift = s.drift_sd * rng.standard_normal()
    t = np.arange(x.size) / s.sample_rate
    return gain * x + offset + drift * t, starts


def digitise(current: np.ndarray, settings: SignalSettings = SignalSettings()) -> np.ndarray:
    """pA to int16 ADC counts (rounded, clipped to the int16 range)."""
    s = settings
    raw = np.rint(np.asarray(current) * s.digitisation / s.adc_range - s.adc_offset)
    return np.clip(raw, -32768, 32767).astype(np.int16)


def sample_reads(genomes: dict[str, str], pore: PoreModel, n: int, bases: int,
                 rng: np.random.Generator, settings: SignalSettings = SignalSettings(),
                 prefix: str = "read", weights=None) -> list[Read]:
    """Simulate ``n`` reads of ``bases`` bases from random places of random genomes and strands.

    Parameters
    ----------
    genomes : dict of str
        Genome name to forward-strand sequence.
    pore : PoreModel
    n, bases : int
        Reads, and bases per read (shorter genomes give their whole length).
    rng : numpy.random.Generator
    settings : SignalSettings
    prefix : str
        Read ids are ``{prefix}{i}``.
    weights : array_like, optional
        Probability of each genome (default: proportional to length).

    Returns
    -------
    list of Read
    """
    names = list(genomes)
    lengths = np.array([len(genomes[g]) for g in names], dtype=float)
    p = lengths / lengths.sum() if weights is None else np.asarray(weights, float) / np.sum(weights)
    reads = []
    for i in range(int(n)):
        g = names[rng.choice(len(names), p=p)]
        seq = genomes[g]
        length = min(int(bases), len(seq))
        start = int(rng.integers(0, len(seq) - length + 1))
        piece = seq[start:start + length]
        strand = "+" if rng.random() < 0.5 else "-"
        if strand == "-":
            piece = reverse_complement(piece)
        codes = pore.kmer_codes(piece)
        current, starts = simulate_signal(pore.level_mean[codes], pore.level_stdv[codes], rng,
                                          settings)
        reads.append(Read(f"{prefix}{i}", digitise(current, settings), settings.adc_offset,
                          settings.adc_range, settings.digitisation, settings.sample_rate,
                          genome=g, strand=strand, start=start, end=start + length,
                          sequence=piece, boundaries=starts))
    return reads
