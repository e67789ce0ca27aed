"""Behavioral analog layers, quantizers, S4D, training and deployment."""
