"""Crossbar circuits: netlist builder, ngspice runner, fast nodal solver, transfer curves."""
