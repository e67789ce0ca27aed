"""Applications of the seed systems, each a subpackage on the levels below (device, circuit, noise, analog)."""
