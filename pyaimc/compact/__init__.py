"""Code generation from a fitted device model: Verilog-A parameters and ngspice subcircuits."""
