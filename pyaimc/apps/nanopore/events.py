"""Event segmentation of raw signals: where a new k-mer enters the pore, by two-sample t-tests.

At every sample the means of the ``w`` samples before and after it are compared with Welch's t
statistic; a boundary is a local maximum of that statistic above a threshold. Two windows run
together, as raw-signal mappers do (a short one for short dwells, a long one for small steps
between similar levels); boundaries closer than ``min_gap`` samples are merged. Each event is
then the mean current between two boundaries, and a read's events are normalised to median 0
and unit robust spread (:func:`pyaimc.apps.nanopore.pore.normalize`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyaimc.apps.nanopore.pore import normalize


@dataclass(frozen=True)
class EventSettings:
    """Segmentation settings.

    Parameters
    ----------
    windows : tuple of int
        Window lengths of the t-tests, samples.
    thresholds : tuple of float
        t statistic a boundary must exceed, one per window.
    min_gap : int
        Boundaries closer than this (samples) are merged (the stronger one kept).
    peak_radius : int
        A boundary is the largest t within this many samples either side.
    """

    windows: tuple = (3,)
    thresholds: tuple = (4.0,)
    min_gap: int = 2
    peak_radius: int = 1

    def __post_init__(self) -> None:
        if len(self.windows) != len(self.thresholds) or not self.windows:
            raise ValueError("EventSettings needs one threshold per window")
        if any(int(w) < 2 for w in self.windows):
            raise ValueError(f"t-test windows need at least 2 samples, got {self.windows}")
        if int(self.min_gap) < 1 or int(self.peak_radius) < 1:
            raise ValueError(f"min_gap and peak_radius must be >= 1 sample, got "
                             f"{self.min_gap}, {self.peak_radius}")


def t_statistic(x: np.ndarray, w: int) -> np.ndarray:
    """Welch's t between the ``w`` samples before and from each sample (0 near the ends)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    t = np.zeros(n)
    if n < 2 * w:
        return t
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    i = np.arange(w, n - w + 1)
    s_l, q_l = c1[i] - c1[i - w], c2[i] - c2[i - w]
    s_r, q_r = c1[i + w] - c1[i], c2[i + w] - c2[i]
    m_l, m_r = s_l / w, s_r / w
    v_l = np.maximum(q_l / w - m_l ** 2, 0.0)
    v_r = np.maximum(q_r / w - m_r ** 2, 0.0)
    # a floor on the variance keeps two flat stretches from giving an infinite t
    denom = np.sqrt((v_l + v_r) / w + 1e-6)
    t[i[i < n]] = (np.abs(m_r - m_l) / denom)[i < n]
    return t


def _peaks(t: np.ndarray, w: int, threshold: float) -> np.ndarray:
    """Samples where ``t`` exceeds ``threshold`` and is the largest within ``w`` either side."""
    from scipy.ndimage import maximum_filter1d

    m = maximum_filter1d(t, size=2 * w + 1, mode="constant")
    return np.flatnonzero((t >= m) & (t > threshold))


def segment(signal: np.ndarray, settings: EventSettings = EventSettings()) -> np.ndarray:
    """Event boundaries of a raw signal: sample indices, starting with 0, ending with its length.

    Parameters
    ----------
    signal : ndarray (samples,)
        Current, any unit (the t statistic is scale-free).
    settings : EventSettings
    """
    x = np.asarray(signal, dtype=np.float64)
    cand, score = [], []
    for w, thr in zip(settings.windows, settings.thresholds):
        t = t_statistic(x, int(w))
        p = _peaks(t, int(settings.peak_radius), float(thr))
        cand.append(p)
        score.append(t[p] / thr)
    if not cand:
        return np.array([0, x.size])
    pos = np.concatenate(cand)
    sc = np.concatenate(score)
    order = np.argsort(pos, kind="stable")
    pos, sc = pos[order], sc[order]
    keep: list[int] = []
    best: list[float] = []
    for p, s in zip(pos, sc):
        if keep and p - keep[-1] < settings.min_gap:
            if s > best[-1]:
                keep[-1], best[-1] = int(p), float(s)
            continue
        keep.append(int(p))
        best.append(float(s))
    b = np.array([k for k in keep if 0 < k < x.size], dtype=np.int64)
    return np.concatenate([[0], b, [x.size]])


def events(signal: np.ndarray, settings: EventSettings = EventSettings(),
           normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Event means of a raw signal (normalised by default) and each event's start sample.

    Returns
    -------
    means : ndarray (events,)
        Mean current of each event; robust z-scores when ``normalise``.
    starts : ndarray (events,)
        First sample of each event.
    """
    x = np.asarray(signal, dtype=np.float64)
    b = segment(x, settings)
    c = np.concatenate([[0.0], np.cumsum(x)])
    means = (c[b[1:]] - c[b[:-1]]) / np.diff(b)
    if normalise:
        means = normalize(means)
    return means, b[:-1]


def collapse(x: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge runs of consecutive values that step by less than ``delta``.

    A segmenter misses most boundaries between k-mers of similar level and splits some long
    dwells; merging such steps on both the read and the reference side makes their event
    sequences agree more often (the raw-signal analogue of homopolymer compression).

    Returns
    -------
    values : ndarray
        Mean of each run.
    first : ndarray of int
        Index of each run's first value.
    """
    x = np.asarray(x, dtype=np.float64)
    if delta <= 0 or x.size < 2:
        return x.copy(), np.arange(x.size)
    first = np.concatenate([[0], np.flatnonzero(np.abs(np.diff(x)) >= delta) + 1])
    sums = np.add.reduceat(x, first)
    counts = np.diff(np.concatenate([first, [x.size]]))
    return sums / counts, first
