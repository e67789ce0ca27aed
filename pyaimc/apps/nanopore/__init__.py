"""Raw nanopore signal mapping in ReRAM: device-noise hashing and content-addressable memory.

The system of arXiv 2504.15934 on pyaimc's levels: signals simulated from a k-mer pore model or
read from POD5 / SLOW5 files (:mod:`.pore`, :mod:`.signal`, :mod:`.files`), t-test event
segmentation (:mod:`.events`), seeds hashed by sign random projections whose matrix is the
programming noise of a crossbar of a fitted device model (:mod:`.hashing`), searched in a ReRAM
ternary CAM whose match lines carry device variability and read noise, checked against pyaimc's
circuit engines (:mod:`.cam`), then seed-and-vote mapping (:mod:`.mapper`); the experiments with
their baselines (:mod:`.experiment`) and a speed and energy estimate (:mod:`.energy`).
"""
