"""Load TensorFlow models of the supported formats behind one :class:`Predictor` interface.

Imported only inside the model worker process (it imports TensorFlow).

Formats (the request's ``format``):

* ``graphdef``: a TF1 frozen GraphDef file; params name the input/output nodes.
* ``savedmodel``: a TF2 SavedModel directory; a signature (``serving_default``) is used.
* ``keras``: a Keras v3 ``.keras`` file.
* ``onnx``: an ONNX file, converted to a SavedModel (see :mod:`.onnx_models`).

The hot path always calls a concrete function directly (never ``model.predict``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, cast

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context as eager_context

from .wire import ErrorKind

TensorInfo = dict[str, Any]  # {"name": str, "dtype": "float32", "shape": [None, 42]}

#: TensorFlow's executor that runs a function's ops one after another on the calling
#: thread (an op's own work is still spread over the intra-op threads). The default
#: executor hands ops to its inter-op pool, a thread wake-up per hop: measured on 2
#: cores, the seed model's single-row call after 1.5 ms idle took 230-360 us with
#: this one against 350-500 us with the default, two lanes of a 200-layer CNN ran
#: as fast or faster, and 100,000 rows in two lanes of pieces took the same time.
SINGLE_THREADED = "SINGLE_THREADED_EXECUTOR"


class ModelLoadError(Exception):
    """The model cannot be loaded (bad file, unknown node...). Message is one clear line."""

    kind = ErrorKind.LOAD


class InputError(Exception):
    """The request's inputs do not fit the model."""

    kind = ErrorKind.BAD_INPUT


class OutOfMemory(Exception):
    """The model ran out of memory (too big a batch for this machine, most likely)."""

    kind = ErrorKind.OUT_OF_MEMORY


class NotLoaded(Exception):
    """A prediction for a model the worker does not hold: the supervisor loads it."""

    kind = ErrorKind.NOT_LOADED


def configure_tensorflow(threads: int) -> None:
    """Set this process's TensorFlow threads before it runs anything: ``threads`` for
    intra- and inter-op work, and thread pools that sleep when they have no work.

    By default TensorFlow's pools spin a while after each op, waiting for the next
    one. Between one request and the next that burns a core the Jupyter server and
    its clients need; measured on 2 cores, the seed model's single-row call took
    0.25-0.30 ms without spinning against 0.38-0.43 ms with it, and a 200-layer CNN
    was no slower (2.3-2.4 against 2.7-3.0 ms a row). No public API sets this before
    the eager context starts: it goes into the context's ``ConfigProto``. A no-op
    once TensorFlow has run something (the settings are fixed then).
    """
    from tensorflow.core.protobuf import config_pb2

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        return  # TF already initialised (only possible if something ran ops at import)
    ctx = eager_context.context()
    config = config_pb2.ConfigProto()
    if getattr(ctx, "_config", None) is not None:
        config.CopyFrom(ctx._config)
    config.experimental.disable_thread_spinning = True
    ctx._config = config


def _shape_list(shape: tf.TensorShape) -> list[int | None] | None:
    if shape.rank is None:
        return None
    return [None if d is None else int(d) for d in shape.as_list()]


def _info(name: str, dtype: tf.dtypes.DType, shape: tf.TensorShape) -> TensorInfo:
    return {"name": name, "dtype": np.dtype(dtype.as_numpy_dtype).name, "shape": _shape_list(shape)}


class Predictor:
    """A loaded model: signature metadata plus a direct call into a concrete function.

    ``inputs``/``outputs`` are lists of ``{"name", "dtype", "shape"}`` where ``dtype`` is
    a numpy dtype name and ``shape`` a list (``None`` for an unknown dim, first dim is the
    batch; ``shape`` itself is ``None`` for unknown rank). ``predict`` takes one array per
    input in ``inputs`` order and returns one array per output in ``outputs`` order.
    """

    def __init__(
        self,
        inputs: list[TensorInfo],
        outputs: list[TensorInfo],
        call: Callable[[list[tf.Tensor]], Sequence[tf.Tensor]],
        keepalive: Any = None,
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self._call = call
        # Loaded SavedModels/Keras models own the variables the concrete function uses.
        self._keepalive = keepalive
        self._dtypes = [np.dtype(i["dtype"]) for i in inputs]
        #: The executor of this model's calls: the single-threaded one until a call
        #: shows the model needs the default: control flow, which TensorFlow lowers to
        #: Switch/Merge/loop nodes for TF1 graphs and for tf.cond, while loops, LSTMs.
        self._executor = SINGLE_THREADED

    def metadata(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs}

    def _check(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(arrays) != len(self.inputs):
            names = ", ".join(i["name"] for i in self.inputs)
            raise InputError(
                f"model expects {len(self.inputs)} input(s) ({names}), got {len(arrays)}"
            )
        out = []
        for a, info, dt in zip(arrays, self.inputs, self._dtypes):
            shape = info["shape"]
            if shape is not None:
                ok = a.ndim == len(shape) and all(
                    s is None or s < 0 or s == d for s, d in zip(shape, a.shape)
                )
                if not ok:
                    want = "[" + ", ".join("None" if s is None else str(s) for s in shape) + "]"
                    raise InputError(
                        f"input '{info['name']}' expects shape {want}, got {list(a.shape)}"
                    )
            if a.dtype != dt:
                # The server casts each input to the model's dtype where it shapes the
                # request (exactly, or a 400 saying why not); a call that reaches the
                # worker with another dtype is refused, never cast a second time.
                raise InputError(
                    f"input '{info['name']}' takes {dt.name}; the call sent {a.dtype.name}"
                )
            out.append(a)
        return out

    def predict(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        arrays = self._check(arrays)
        try:
            results = self._run([tf.convert_to_tensor(a) for a in arrays])
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            raise InputError(_one_line(e)) from e
        except (tf.errors.ResourceExhaustedError, MemoryError) as e:
            raise OutOfMemory(f"the model ran out of memory: {_one_line(e)}") from e
        return [np.asarray(r.numpy()) for r in results]

    def _run(self, tensors: list[tf.Tensor]) -> Sequence[tf.Tensor]:
        """The call, with this model's executor. TensorFlow reads a function call's
        executor from the calling thread's options; they are put back afterwards, so
        nothing else this thread runs (an export's tracing) inherits them."""
        options = _call_options()
        if options is None:  # a TensorFlow without them: its default executor
            return self._call(tensors)
        before = options.executor_type
        options.executor_type = self._executor
        try:
            return self._call(tensors)
        except tf.errors.OpError as e:
            # what the executor refuses it refuses when it is set up (the first call),
            # before any op ran: low-level control flow, partitioned graphs, collectives
            if self._executor != SINGLE_THREADED or "ingle-threaded executor" not in str(e):
                raise
            self._executor = options.executor_type = ""
            return self._call(tensors)
        finally:
            options.executor_type = before

    @property
    def executor(self) -> str:
        """The executor this model's calls use ("" for TensorFlow's default)."""
        return self._executor

    def warm_up(self) -> None:
        """Run once on a batch of one zeros when every non-batch dim is known.

        The first call of a concrete function pays one-off costs (kernel selection,
        allocator growth); do it at load time rather than on the first user request.
        A failure here means the model cannot run at all, so it is a load error.
        """
        batch = []
        for info, dt in zip(self.inputs, self._dtypes):
            shape = info["shape"]
            if shape is None or any(s is None or s < 0 for s in shape[1:]):
                return
            batch.append(np.zeros([1, *shape[1:]] if shape else [], dtype=dt))
        try:
            self.predict(batch)
        except InputError as e:
            raise ModelLoadError(f"the model fails on a zero input of batch 1: {e}") from e


def _call_options() -> Any:
    """The calling thread's function call options (TensorFlow's eager context; None if
    this TensorFlow has no such thing)."""
    return getattr(eager_context.context(), "function_call_options", None)


def _one_line(e: BaseException) -> str:
    """A short message for an exception (TF messages can span many lines)."""
    msg = str(getattr(e, "message", None) or e).strip()
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    # TF appends graph context like "\n\t [[{{node x}}]]"; keep just the first line.
    return text[:500]


# --------------------------------------------------------------------------- graphdef


def _param(params: dict[str, Any], *names: str) -> Any:
    for n in names:
        if params.get(n) not in (None, "", []):
            return params[n]
    return None


def _node_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _tensor_name(name: str) -> tuple[str, str]:
    """(op name, tensor name) for "x" or "x:0" (a leading "^" control marker is dropped)."""
    name = name.lstrip("^")
    if ":" in name:
        op, _, idx = name.rpartition(":")
        if idx.isdigit():
            return op, name
    return name, f"{name}:0"


_NOT_OUTPUTS = {"NoOp", "Const", "Placeholder", "PlaceholderWithDefault", "Assert", "SaveV2",
                "RestoreV2", "VarHandleOp", "VariableV2", "Identity_Placeholder"}


def load_graphdef(path: str, params: dict[str, Any]) -> Predictor:
    """A frozen TF1 GraphDef.

    params: ``inputNode``/``input_node`` and ``outputNode``/``output_node`` (a node name,
    ``name:0``, a list, or a comma-separated string). Without them the only Placeholder is
    the input and the only sink node (consumed by nothing) the output.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelLoadError(f"cannot read the GraphDef file: {e.strerror}") from None
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # protobuf raises DecodeError or others depending on the backend
        raise ModelLoadError(
            f"{os.path.basename(path)} is not a valid TensorFlow frozen GraphDef (.pb) file"
        ) from None
    if not graph_def.node:
        raise ModelLoadError(f"{os.path.basename(path)} contains an empty GraphDef")
    nodes = {n.name: n for n in graph_def.node}
    placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]

    in_param = _param(params, "inputNode", "input_node")
    out_param = _param(params, "outputNode", "output_node")
    if in_param is not None:
        in_names = _node_list(in_param)
    elif len(placeholders) == 1:
        in_names = placeholders
    else:
        raise ModelLoadError(
            f"cannot guess the input node ({len(placeholders)} Placeholder nodes"
            + (f": {', '.join(placeholders[:5])}" if placeholders else "")
            + "); set the 'inputNode' param"
        )
    if out_param is not None:
        out_names = _node_list(out_param)
    else:
        consumed = {_tensor_name(i)[0] for n in graph_def.node for i in n.input}
        sinks = [n.name for n in graph_def.node
                 if n.name not in consumed and n.op not in _NOT_OUTPUTS]
        if len(sinks) != 1:
            raise ModelLoadError(
                "cannot guess the output node"
                + (f" (candidates: {', '.join(sinks[:5])})" if sinks else "")
                + "; set the 'outputNode' param"
            )
        out_names = sinks

    feeds = [_tensor_name(n) for n in in_names]
    fetches = [_tensor_name(n) for n in out_names]
    for role, pairs in (("input", feeds), ("output", fetches)):
        for op, _ in pairs:
            if op not in nodes:
                hint = ""
                if role == "input" and placeholders:
                    hint = f"; Placeholder nodes in the graph: {', '.join(placeholders[:5])}"
                elif role == "output":
                    hint = f"; the last node is '{graph_def.node[-1].name}'"
                raise ModelLoadError(f"{role} node '{op}' not found in the graph{hint}")

    def _import() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    try:
        wrapped = tf.compat.v1.wrap_function(_import, [])
        g = wrapped.graph
        feed_t = [g.get_tensor_by_name(t) for _, t in feeds]
        fetch_t = [g.get_tensor_by_name(t) for _, t in fetches]
        # With an input signature TensorFlow binds the call's arguments at once;
        # without one its structured binding fails on every call (formatting the
        # input tensors for the error) before it falls back to the flat call.
        fn = wrapped.prune(feed_t, fetch_t, input_signature=(
            tuple(tf.TensorSpec(t.shape, t.dtype) for t in feed_t), {}))
    except (ValueError, KeyError, TypeError, tf.errors.OpError) as e:
        raise ModelLoadError(f"cannot import the GraphDef: {_one_line(e)}") from e

    inputs = [_info(op, t.dtype, t.shape) for (op, _), t in zip(feeds, feed_t)]
    outputs = [_info(op, t.dtype, t.shape) for (op, _), t in zip(fetches, fetch_t)]

    # The flat call, bound once: TensorFlow's structured binding of the arguments
    # (already checked and cast by Predictor) took 45 of a single row's 150 us.
    flat_call = getattr(fn, "_call_flat", None)
    captured = list(fn.captured_inputs)

    def call(xs: list[tf.Tensor]) -> Sequence[tf.Tensor]:
        if flat_call is None:  # a TensorFlow without it: the public call
            return cast("Sequence[tf.Tensor]", fn(*xs))
        return cast("Sequence[tf.Tensor]", flat_call(xs, captured))

    return Predictor(inputs, outputs, call, keepalive=wrapped)


# --------------------------------------------------------------------------- savedmodel


def load_savedmodel(path: str, params: dict[str, Any]) -> Predictor:
    """A TF2 SavedModel directory, through one of its signatures.

    Order rule (the server relies on it): inputs are the signature's keyword arguments
    sorted by name; outputs are the keys of the signature's output dict sorted by name.
    params: ``signature`` (default ``serving_default``).
    """
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModelLoadError("not a SavedModel directory (saved_model.pb is missing)")
    try:
        obj = tf.saved_model.load(path)
    except Exception as e:  # TF raises a zoo of types for corrupt SavedModels
        raise ModelLoadError(f"cannot load the SavedModel: {_one_line(e)}") from e
    sig_name = params.get("signature") or "serving_default"
    sigs = getattr(obj, "signatures", {}) or {}
    if sig_name not in sigs:
        have = ", ".join(sorted(sigs)) or "none"
        raise ModelLoadError(
            f"the SavedModel has no signature '{sig_name}' (signatures: {have}); "
            "set the 'signature' param"
        )
    fn = sigs[sig_name]
    args, kwargs = fn.structured_input_signature
    if args:
        raise ModelLoadError(f"signature '{sig_name}' has positional inputs; unsupported")
    in_names = sorted(kwargs)
    inputs = [_info(n, kwargs[n].dtype, kwargs[n].shape) for n in in_names]
    outs = fn.structured_outputs
    if not isinstance(outs, dict):
        raise ModelLoadError(f"signature '{sig_name}' does not return a dict of outputs")
    out_names = sorted(outs)
    outputs = [_info(n, outs[n].dtype, outs[n].shape) for n in out_names]

    def call(xs: list[tf.Tensor]) -> Sequence[tf.Tensor]:
        res = fn(**dict(zip(in_names, xs)))
        return [res[n] for n in out_names]

    return Predictor(inputs, outputs, call, keepalive=obj)


# --------------------------------------------------------------------------- keras


def load_keras(path: str, params: dict[str, Any]) -> Predictor:
    """A Keras ``.keras`` file, called as ``model(x, training=False)`` in a tf.function."""
    try:
        import keras
    except ImportError:
        raise ModelLoadError("the 'keras' format needs Keras in the worker's Python") from None
    try:
        # safe_mode=True (explicit): a lambda layer's pickled Python is refused, not run.
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise ModelLoadError(f"cannot load the Keras model: {_one_line(e)}") from e
    try:
        kinputs = list(model.inputs)
    except (AttributeError, ValueError):
        kinputs = []
    if not kinputs:
        raise ModelLoadError("the Keras model has no defined inputs (build it before saving)")
    specs = [
        tf.TensorSpec(shape=tuple(t.shape), dtype=tf.as_dtype(t.dtype), name=f"input_{i}")
        for i, t in enumerate(kinputs)
    ]
    names = [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(kinputs)]
    single = len(specs) == 1

    @tf.function(input_signature=specs, autograph=False)  # type: ignore[untyped-decorator]
    def serve(*xs: tf.Tensor) -> Any:
        return model(xs[0] if single else list(xs), training=False)

    try:
        cf = serve.get_concrete_function()
    except Exception as e:
        raise ModelLoadError(f"cannot trace the Keras model: {_one_line(e)}") from e
    flat_out = tf.nest.flatten(cf.structured_outputs)
    out_names = list(getattr(model, "output_names", None) or [])
    if len(out_names) != len(flat_out) or isinstance(cf.structured_outputs, dict):
        if isinstance(cf.structured_outputs, dict):
            out_names = sorted(cf.structured_outputs)  # tf.nest flattens dicts by sorted key
        else:
            out_names = [f"output_{i}" for i in range(len(flat_out))]
    inputs = [_info(n, s.dtype, s.shape) for n, s in zip(names, specs)]
    outputs = [_info(n, t.dtype, t.shape) for n, t in zip(out_names, flat_out)]

    def call(xs: list[tf.Tensor]) -> Sequence[tf.Tensor]:
        return cast("Sequence[tf.Tensor]", tf.nest.flatten(cf(*xs)))

    return Predictor(inputs, outputs, call, keepalive=(model, serve))


# --------------------------------------------------------------------------- onnx


def load_onnx(path: str, params: dict[str, Any]) -> Predictor:
    """An ONNX file, through the SavedModel onnx2tf converts it to.

    The signature is the ONNX model's: channels-first inputs stay channels first (their
    entry says ``"layout"``), and outputs take the ONNX graph's output names.
    """
    from . import onnx_models

    try:
        folder = onnx_models.saved_model_for(path)
        layouts, onnx_outputs = onnx_models.graph_names(path)
    except onnx_models.ConversionError as e:
        raise ModelLoadError(str(e)) from None
    predictor = load_savedmodel(folder, {})
    for info in predictor.inputs:
        if info["name"] in layouts:
            info["layout"] = layouts[info["name"]]
    # onnx2tf names the outputs output_0, output_1, ... in the ONNX graph's order
    for info in predictor.outputs:
        index = info["name"].rpartition("_")[2]
        if index.isdigit() and int(index) < len(onnx_outputs):
            info["name"] = onnx_outputs[int(index)]
    return predictor


LOADERS: dict[str, Callable[[str, dict[str, Any]], Predictor]] = {
    "graphdef": load_graphdef,
    "savedmodel": load_savedmodel,
    "keras": load_keras,
    "onnx": load_onnx,
}


def load(fmt: str, path: str, params: dict[str, Any] | None) -> Predictor:
    """Load and warm up a model. Raises :class:`ModelLoadError` with a one-line message."""
    loader = LOADERS.get(fmt)
    if loader is None:
        raise ModelLoadError(f"unknown model format '{fmt}' (known: {', '.join(LOADERS)})")
    if not os.path.exists(path):
        raise ModelLoadError(f"model path does not exist: {path}")
    predictor = loader(path, dict(params or {}))
    unsupported = [
        f"{info['name']} ({info['dtype']})" for info in predictor.inputs
        if np.dtype(info["dtype"]).kind not in "fiub"
    ]
    if unsupported:
        raise ModelLoadError(
            "inputs that are not numbers are not supported (requests carry numbers): "
            + ", ".join(unsupported)
        )
    predictor.warm_up()
    return predictor
