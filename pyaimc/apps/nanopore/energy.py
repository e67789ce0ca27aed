"""Speed and energy of the in-memory search, estimated from documented circuit constants.

Per read seed the chip does one hashing matrix-vector product (``k`` rows, ``2 n_bits``
columns, a comparator per column pair) and one TCAM search of every stored word at once
(precharge each match line, let it discharge through the cells the query selects, sense it).
The constants below are assumptions of a 28-40 nm ReRAM macro (stated in ``docs/nanopore.md``
with their reasoning); the cell currents come from the fitted device model. The software
baseline is measured (seconds per seed query of the faiss search on this machine's CPU) and
its energy is that time times an assumed CPU core power.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CircuitConstants:
    """Assumed circuit constants (SI units).

    Attributes
    ----------
    c_ml_per_bit : float
        Match-line capacitance per bit (two access-transistor drains and wire), F.
    v_ml : float
        Match-line precharge voltage, V (a read voltage: switches no cell).
    c_sl_per_word : float
        Search-line capacitance per word crossed (one gate and wire), F.
    v_sl : float
        Search-line (gate) swing, V.
    e_sense : float
        Energy of one sense amplifier decision (latched comparator), J.
    t_search : float
        One search: precharge plus evaluation, s.
    words_per_array : int
        Match lines per array (search lines are driven once per array).
    t_mvm : float
        One hashing read of the crossbar (integration time), s.
    e_comparator : float
        One comparator decision of a hash bit, J.
    e_dac : float
        One input DAC conversion, J.
    p_cpu : float
        Power of one CPU core running the software search, W.
    """

    c_ml_per_bit: float = 1.0e-15
    v_ml: float = 0.2
    c_sl_per_word: float = 0.2e-15
    v_sl: float = 1.0
    e_sense: float = 5e-15
    t_search: float = 2e-9
    words_per_array: int = 256
    t_mvm: float = 10e-9
    e_comparator: float = 5e-15
    e_dac: float = 50e-15
    p_cpu: float = 15.0

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(n_words: int, n_bits: int, k: int, g_cell_mean: float, v_in_rms: float,
             seconds_per_query_software: float,
             constants: CircuitConstants = CircuitConstants()) -> dict:
    """Time and energy per read seed on the memristor system and in software.

    Parameters
    ----------
    n_words : int
        Reference seeds stored in the CAM.
    n_bits : int
        Hash length.
    k : int
        Seed length (crossbar rows).
    g_cell_mean : float
        Mean conductance of the hashing crossbar's cells, S.
    v_in_rms : float
        RMS row voltage of the hashing product, V.
    seconds_per_query_software : float
        Measured time of one seed search in software, s.
    constants : CircuitConstants

    Returns
    -------
    dict
        ``hash_energy_j``, ``search_energy_j``, ``energy_per_seed_j``, ``time_per_seed_s``
        (the hash and the search pipelined: the slower of the two), ``software_energy_j``,
        ``software_time_s``, ``speedup``, ``energy_ratio`` (software / chip).
    """
    c = constants
    arrays = -(-int(n_words) // c.words_per_array)
    # every match line is precharged and sensed once; the search lines of each array swing once
    e_ml = n_words * (n_bits * c.c_ml_per_bit * c.v_ml ** 2 + c.e_sense)
    e_sl = arrays * 2 * n_bits * c.words_per_array * c.c_sl_per_word * c.v_sl ** 2 / 2
    e_search = e_ml + e_sl
    # hashing: the cells' ohmic energy during the read, DACs and comparators
    e_cells = k * 2 * n_bits * g_cell_mean * v_in_rms ** 2 * c.t_mvm
    e_hash = e_cells + k * c.e_dac + n_bits * c.e_comparator
    t_chip = max(c.t_search, c.t_mvm)
    e_chip = e_hash + e_search
    e_sw = seconds_per_query_software * c.p_cpu
    return {"arrays": arrays, "hash_energy_j": e_hash, "search_energy_j": e_search,
            "energy_per_seed_j": e_chip, "time_per_seed_s": t_chip,
            "software_time_s": seconds_per_query_software, "software_energy_j": e_sw,
            "speedup": seconds_per_query_software / t_chip, "energy_ratio": e_sw / e_chip,
            "constants": c.to_dict()}
