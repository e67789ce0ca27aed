"""Raw reads in the files sequencers write: POD5 (``pod5``) and SLOW5/BLOW5 (``pyslow5``).

Both store each read's int16 ADC counts with a calibration; :class:`~.signal.Read` keeps them
the same way, so a read survives a round trip unchanged. ``read_reads`` reads any of the formats
by file extension (``.pod5``; ``.slow5``, ``.blow5``).
"""

from __future__ import annotations

import datetime
import os
import uuid
from pathlib import Path

import numpy as np

from pyaimc.apps.nanopore.signal import Read


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"reading and writing this format needs the '{module}' package: "
                          f"pip install 'pyaimc[nanopore]'") from None


def _uuid(read_id: str) -> uuid.UUID:
    """POD5 read ids are UUIDs; other ids map to a stable name-based UUID."""
    try:
        return uuid.UUID(str(read_id))
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"pyaimc-read:{read_id}")


def write_pod5(path: str | os.PathLike, reads: list[Read]) -> Path:
    """Write reads to a POD5 file (read ids that are not UUIDs get name-based UUIDs)."""
    pod5 = _need("pod5")
    path = Path(path)
    if path.exists():
        path.unlink()
    stamp = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    with pod5.Writer(path) as writer:
        for i, r in enumerate(reads):
            run = pod5.RunInfo(
                acquisition_id="pyaimc-simulated", acquisition_start_time=stamp,
                adc_max=32767, adc_min=-32768, context_tags={}, experiment_name="pyaimc",
                flow_cell_id="", flow_cell_product_code="", protocol_name="simulation",
                protocol_run_id="pyaimc", protocol_start_time=stamp, sample_id="simulated",
                sample_rate=int(round(r.sample_rate)), sequencing_kit="",
                sequencer_position="", sequencer_position_type="", software="pyaimc",
                system_name="", system_type="", tracking_id={})
            writer.add_read(pod5.Read(
                read_id=_uuid(r.read_id), pore=pod5.Pore(channel=1 + i % 512, well=1,
                                                         pore_type="r9.4"),
                calibration=pod5.Calibration(offset=float(r.offset),
                                             scale=float(r.range / r.digitisation)),
                read_number=i, start_sample=0, median_before=0.0,
                end_reason=pod5.EndReason(pod5.EndReasonEnum.SIGNAL_POSITIVE, False),
                run_info=run, signal=np.asarray(r.raw, dtype=np.int16)))
    return path


def read_pod5(path: str | os.PathLike) -> list[Read]:
    """Reads of a POD5 file (ids as UUID strings)."""
    pod5 = _need("pod5")
    out = []
    with pod5.Reader(Path(path)) as reader:
        for rec in reader.reads():
            cal = rec.calibration
            # pA = (raw + offset) * scale: keep scale as range / digitisation with digitisation 1
            out.append(Read(str(rec.read_id), np.asarray(rec.signal, dtype=np.int16),
                            float(cal.offset), float(cal.scale), 1.0,
                            float(rec.run_info.sample_rate)))
    return out


def write_slow5(path: str | os.PathLike, reads: list[Read]) -> Path:
    """Write reads to a SLOW5 (``.slow5``, text) or BLOW5 (``.blow5``, binary) file."""
    s5lib = _need("pyslow5")
    path = Path(path)
    if path.exists():
        path.unlink()
    s5 = s5lib.Open(str(path), "w")
    try:
        # pyslow5 writes every header field as text: fill the empty ones with "."
        header = {k: "." for k in s5.get_empty_header()}
        header.update(run_id="pyaimc-simulated", software="pyaimc",
                      sample_frequency=str(int(round(reads[0].sample_rate))) if reads else ".")
        s5.write_header(header)
        for r in reads:
            rec = s5.get_empty_record()
            rec.update({"read_id": str(r.read_id), "read_group": 0,
                        "digitisation": float(r.digitisation), "offset": float(r.offset),
                        "range": float(r.range), "sampling_rate": float(r.sample_rate),
                        "len_raw_signal": int(len(r.raw)),
                        "signal": np.asarray(r.raw, dtype=np.int16)})
            ret = s5.write_record(rec)
            if ret < 0:
                raise OSError(f"{path}: pyslow5 could not write read {r.read_id} (code {ret})")
    finally:
        s5.close()
    return path


def read_slow5(path: str | os.PathLike) -> list[Read]:
    """Reads of a SLOW5/BLOW5 file."""
    s5lib = _need("pyslow5")
    s5 = s5lib.Open(str(path), "r")
    try:
        return [Read(str(rec["read_id"]), np.asarray(rec["signal"], dtype=np.int16),
                     float(rec["offset"]), float(rec["range"]), float(rec["digitisation"]),
                     float(rec["sampling_rate"])) for rec in s5.seq_reads(pA=False)]
    finally:
        s5.close()


def read_reads(path: str | os.PathLike) -> list[Read]:
    """Reads of a POD5, SLOW5 or BLOW5 file, by extension."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext == ".pod5":
        return read_pod5(path)
    if ext in (".slow5", ".blow5"):
        return read_slow5(path)
    raise ValueError(f"{path}: unknown raw-read format {ext!r}; expected .pod5, .slow5 or .blow5")
