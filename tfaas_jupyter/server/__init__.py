"""The server side: everything that runs inside the Jupyter server's process.

The service, the model repository, uploads, batching, the model worker's supervisor
and the wire codecs. It never imports TensorFlow (the worker runs it) and never imports
the HTTP handlers (they import it).
"""
