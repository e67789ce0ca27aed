"""Applications of the seed systems, each a subpackage on the levels below (device, circuit, noise, analog).

- :mod:`pyaimc.apps.gaincell`: sliding-window attention on gain-cell memories (arXiv 2409.19315).
"""
