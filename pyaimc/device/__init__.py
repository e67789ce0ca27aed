"""The stochastic ReRAM device model: marginals, device-to-device mixture, cycle-to-cycle VAR,
I-V and switching, fidelity metrics."""
