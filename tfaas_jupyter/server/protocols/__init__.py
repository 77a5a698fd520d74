"""The wire protocols, one module each, all of the same shape over the one core.

Each adapter decodes its request into a call of the protocol-neutral core
(:class:`tfaas_jupyter.server.service.TFaaS`: "predict these named tensors with this
model version"), and encodes the core's answer in its own format:

* :mod:`.original`: the original TFaaS's ``json``, ``proto`` and ``image`` calls;
* :mod:`.v2`: the Open Inference Protocol (KServe V2, Triton's HTTP API), with
  :mod:`.v2stream` for big binary requests scored while their body arrives;
* :mod:`.tfserving`: TensorFlow Serving's REST API.

A new protocol is a new module here plus its handlers in ``handlers/``. No HTTP
framework in these modules: the handlers read the request and write the answer.
"""
