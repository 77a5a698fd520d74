"""The model worker: the only code that imports TensorFlow.

This package is started as a separate process by :mod:`tfaas_jupyter.server.supervisor`,
possibly with another Python interpreter than the Jupyter server's (in SWAN the
kernels' LCG Python has TensorFlow, the server's has not). It is loaded there as a
stand-alone top-level package, so its modules use only relative imports among
themselves and never import the rest of ``tfaas_jupyter``.
"""
