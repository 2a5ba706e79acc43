"""Spiking neurons: one equation (:func:`neuron_step`) inside a stateful multi-step module.

Membrane update per time step ``t`` (``X_t`` input current, ``V`` membrane), written once
in :mod:`snnkd.neurons.equation`:

* charge      ``H_t = beta V_{t-1} + X_t``   (IF: ``beta = 1``; LIF: ``beta = decay``
  or, when given as a time constant, ``beta = 1 - 1/tau``)
* fire        ``S_t = Theta(H_t - V_th)``  (strict ``>``, as NIR and Loihi define it)
* reset hard  ``V_t = H_t (1 - S_t)``  (to zero)
* reset soft  ``V_t = H_t - V_th S_t``  (subtract the threshold)

``Theta`` is the Heaviside step in the forward pass; its backward pass uses a surrogate
derivative ``g'(u) = (1/w) f(u/w)`` (:mod:`snnkd.neurons.surrogate`).

Built from that one step: the step-by-step reference :func:`run_steps`, the fused BPTT
kernel :func:`multi_step` (:mod:`~snnkd.neurons.fused`), the rate trainer's recorder
:func:`record_steps` (:mod:`~snnkd.neurons.eligibility`) and the ONNX export neuron
(:mod:`snnkd.export.onnx_export`).

Tensors are multi-step ``[T, B, ...]``.  Inside models, stateless layers see the time
axis folded into the batch (``[T*B, ...]``); a neuron unfolds it with the ``T`` of its
model (:class:`TimeSteps`, written only by ``StagedNet.set_T`` / ``model.timesteps``).
"""

from snnkd.neurons.config import SURROGATES, NeuronConfig, SurrogateKind
from snnkd.neurons.eligibility import rate_fn, record_steps
from snnkd.neurons.equation import neuron_step, reset_factor, run_steps, state_dtype, unroll
from snnkd.neurons.fused import multi_step
from snnkd.neurons.module import (
                                  RUNNERS,
                                  NeuronRunner,
                                  SpikingNeuron,
                                  TimeSteps,
                                  register_runner,
                                  reset_net,
)
from snnkd.neurons.surrogate import spike_fn, surrogate_grad, surrogate_grad_

__all__ = [
                                  "RUNNERS",
                                  "SURROGATES",
                                  "NeuronConfig",
                                  "NeuronRunner",
                                  "SpikingNeuron",
                                  "SurrogateKind",
                                  "TimeSteps",
                                  "multi_step",
                                  "neuron_step",
                                  "rate_fn",
                                  "record_steps",
                                  "register_runner",
                                  "reset_factor",
                                  "reset_net",
                                  "state_dtype",
                                  "run_steps",
                                  "spike_fn",
                                  "surrogate_grad",
                                  "surrogate_grad_",
                                  "unroll",
]
