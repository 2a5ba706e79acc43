"""Export of trained snnkd models to neuromorphic formats and targets.

* :mod:`snnkd.export.deploy`      -- inference copy of a model: BatchNorm folded, one time step per call
* :mod:`snnkd.export.nir_export`  -- NIR graph through ``nirtorch.torch_to_nir``
* :mod:`snnkd.export.nir_check`   -- reading ``.nir`` files safely, re-import and agreement checks
* :mod:`snnkd.export.onnx_export` -- ANN and time-unrolled SNN to ONNX, checked with onnxruntime
* :mod:`snnkd.export.loihi.quant` -- Loihi fixed-point quantisation of a NIR graph
* :mod:`snnkd.export.loihi.netx` -- lava-dl netx HDF5 for sequential nets
* :mod:`snnkd.export.loihi.graph`  -- Lava process graphs (residual nets included)
* :mod:`snnkd.export.loihi.run`    -- running them in Lava's ``Loihi2SimCfg(select_tag='fixed_pt')``
* :mod:`snnkd.export.energy`      -- per-layer operation counts on the exported graph, energy per target
"""
