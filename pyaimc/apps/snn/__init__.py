"""ReRAM synapses in a spiking sequence-learning network simulated in NEST (arXiv 2211.16592).

:mod:`.network` builds the spiking temporal-memory network of Bouhadjar et al. (2022) from
NEST's built-in models, :mod:`.plasticity` its permanence rule (applied between simulation
chunks), :mod:`.synapses` ideal and ReRAM synapse arrays, :mod:`.task` training and scoring.
NEST is imported only when a network is built.
"""

from pyaimc.apps.snn.plasticity import PlasticityParams, permanence_update
from pyaimc.apps.snn.synapses import IdealSynapses, PulseInverse, ReRAMSynapses
from pyaimc.apps.snn.task import SEQUENCES_SHORT, encode, evaluate, run_sequences, score

__all__ = ["PlasticityParams", "permanence_update", "IdealSynapses", "PulseInverse",
           "ReRAMSynapses", "SEQUENCES_SHORT", "encode", "evaluate", "run_sequences", "score"]
