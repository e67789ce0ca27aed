"""Pore models and reference sequences: the expected current of a DNA sequence in the pore.

A k-mer pore model gives, for each k-mer sitting in the pore's constriction, the mean current
(pA) and its spread. The expected signal of a sequence is the level of each of its k-mers in
order; a raw signal holds each level for a random number of samples (the dwell time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASES = "ACGT"
_CODE = np.full(256, -1, dtype=np.int8)
for _k, _b in enumerate(BASES):
    _CODE[ord(_b)] = _k
    _CODE[ord(_b.lower())] = _k
_COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")


def encode(seq: str) -> np.ndarray:
    """Bases as codes 0..3 (A, C, G, T); raises on any other letter (N included)."""
    codes = _CODE[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        raise ValueError(f"sequence has {seq[bad[0]]!r} at position {bad[0]}: expected A, C, G or T")
    return codes.astype(np.int64)


def reverse_complement(seq: str) -> str:
    """The reverse complement of a DNA sequence."""
    return seq.translate(_COMPLEMENT)[::-1]


def read_fasta(path: str | os.PathLike) -> dict[str, str]:
    """Sequences of a FASTA file by record name (the first word of each header), upper case.

    Raises
    ------
    ValueError
        A sequence line before the first header, an empty record, or a letter other than
        A, C, G, T, N (named with file and line).
    """
    path = Path(path)
    records: dict[str, list[str]] = {}
    name = None
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                name = line[1:].split()[0] if len(line) > 1 else f"record{len(records) + 1}"
                if name in records:
                    raise ValueError(f"{path}: line {lineno}: record {name!r} appears twice")
                records[name] = []
                continue
            if name is None:
                raise ValueError(f"{path}: line {lineno}: sequence before the first '>' header")
            up = line.upper()
            extra = set(up) - set("ACGTN")
            if extra:
                c = next(c for c in up if c in extra)
                raise ValueError(f"{path}: line {lineno}: letter {c!r}, expected A, C, G, T or N")
            records[name].append(up)
    out = {k: "".join(v) for k, v in records.items()}
    for k, v in out.items():
        if not v:
            raise ValueError(f"{path}: record {k!r} is empty")
    if not out:
        raise ValueError(f"{path}: no FASTA record found")
    return out


@dataclass
class PoreModel:
    """A k-mer pore model.

    Attributes
    ----------
    k : int
        k-mer length.
    level_mean : ndarray (4**k,)
        Mean current of each k-mer, pA, indexed by the k-mer's base-4 code (A=0 ... T=3, first
        base most significant).
    level_stdv : ndarray (4**k,)
        Spread of the current of each k-mer, pA.
    source : str
        Where the table came from.
    """

    k: int
    level_mean: np.ndarray
    level_stdv: np.ndarray
    source: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PoreModel":
        """Read an ONT k-mer model table (tab-separated, header with ``kmer``, ``level_mean``,
        ``level_stdv``), e.g. ``r9.4_450bps_6mer_template_median68pA.model``."""
        path = Path(path)
        with open(path) as fh:
            header = fh.readline().rstrip("\n").split("\t")
            try:
                ik, im, isd = (header.index(c) for c in ("kmer", "level_mean", "level_stdv"))
            except ValueError:
                raise ValueError(f"{path}: line 1: header must name kmer, level_mean and "
                                 f"level_stdv columns, got {header}") from None
            kmers, means, sds = [], [], []
            for lineno, line in enumerate(fh, 2):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split("\t")
                try:
                    kmers.append(parts[ik])
                    means.append(float(parts[im]))
                    sds.append(float(parts[isd]))
                except (IndexError, ValueError):
                    raise ValueError(f"{path}: line {lineno}: expected a k-mer and numeric "
                                     f"level_mean, level_stdv") from None
        k = len(kmers[0]) if kmers else 0
        if k == 0 or len(kmers) != 4 ** k or any(len(s) != k for s in kmers):
            raise ValueError(f"{path}: expected all {4 ** max(k, 1)} k-mers of one length, got "
                             f"{len(kmers)} rows")
        idx = np.array([int("".join(str(BASES.index(c)) for c in s), 4) for s in kmers])
        mean = np.empty(4 ** k)
        sd = np.empty(4 ** k)
        mean[idx] = means
        sd[idx] = sds
        if not (np.all(np.isfinite(mean)) and np.all(sd > 0)):
            raise ValueError(f"{path}: levels must be finite and level_stdv > 0")
        return cls(k, mean, sd, str(path))

    def kmer_codes(self, seq: str | np.ndarray) -> np.ndarray:
        """Code of each k-mer of ``seq`` (len(seq) - k + 1 of them)."""
        b = encode(seq) if isinstance(seq, str) else np.asarray(seq, dtype=np.int64)
        if b.size < self.k:
            raise ValueError(f"sequence of {b.size} bases is shorter than k = {self.k}")
        codes = np.zeros(b.size - self.k + 1, dtype=np.int64)
        for j in range(self.k):
            codes = codes * 4 + b[j:b.size - self.k + 1 + j]
        return codes

    def levels(self, seq: str | np.ndarray) -> np.ndarray:
        """Expected current of each k-mer of ``seq``, pA."""
        return self.level_mean[self.kmer_codes(seq)]

    def normalized_levels(self, seq: str | np.ndarray) -> np.ndarray:
        """Levels of ``seq`` normalised as reads are (median 0, MAD-based unit scale)."""
        return normalize(self.levels(seq))


def normalize(x: np.ndarray) -> np.ndarray:
    """Shift to median 0 and scale by 1.4826 x the median absolute deviation (robust z-score).

    Raw-signal mappers normalise each read so because pores differ in offset and gain and the
    medians ignore the outlying spikes.
    """
    x = np.asarray(x, dtype=np.float64)
    med = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - med))
    if not mad > 0:
        raise ValueError("cannot normalise a constant signal (median absolute deviation 0)")
    return (x - med) / mad
