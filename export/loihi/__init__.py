"""Loihi deployment through Lava: integer quantisation (:mod:`.quant`), average pooling
folded into the next synapse (:mod:`.folding`), the netx HDF5 writer (:mod:`.netx`), Lava
process graphs (:mod:`.graph`), the isolated Lava runner (:mod:`.run`), the export pipeline
(:mod:`.pipeline`) and the Python 3.11 compatibility hook for Lava (:mod:`.compat`)."""
