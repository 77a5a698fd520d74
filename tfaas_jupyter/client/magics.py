"""``%tfaas``: TFaaS from a notebook, with the kernel's own Jupyter server found for you.

>>> %load_ext tfaas_jupyter
>>> %tfaas upload model --name demo          # a live Keras model in the namespace
>>> %tfaas predict demo X_test               # a DataFrame with one column per label
>>> %tfaas curl demo                         # the same request from a shell

Every subcommand talks to the server through :class:`tfaas_jupyter.client.TFaaSClient`;
where that server is comes from :mod:`tfaas_jupyter.discovery`. Neither this module
nor those import TensorFlow or jupyter_server: the kernel's Python may have another
TensorFlow, or none (SWAN). A problem is reported as one line (IPython's
``UsageError``), never a traceback: a notebook user needs the reason, not our stack;
an optional package the kernel lacks (pandas, ipywidgets: the ``notebook`` extra) too.
``%tfaas predict`` and ``%tfaas models`` answer pandas DataFrames, whatever the input.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from . import discovery, secretfiles
from .api import TFaaSClient, TFaaSClientError
from .curl import curl_command, example_request
from .discovery import DiscoveryError, ServerInfo
from .present import (
    KEYS_NOTE,
    format_status,
    keys_frame,
    missing_extra,
    models_frame,
    output_labels,
    predictions_frame,
    specs_text,
)
from .quiet import quiet_tensorflow
from .urls import graph_path

__all__ = [
    "HELP",
    "TFaaSMagics",
    "curl_command",
    "example_request",
    "format_status",
    "load_ipython_extension",
    "models_frame",
    "output_labels",
    "parse_cell_input",
    "predictions_frame",
]

HELP = """\
%tfaas: TensorFlow as a Service from this notebook (models served by the Jupyter server)

  %tfaas status                          the server's status (worker, models, counts)
  %tfaas models                          the models, their versions, inputs and labels
  %tfaas upload MODEL_VAR --name NAME [--labels a,b,...] [--params FILE] [--replace]
                                         upload a live Keras model from the namespace
  %tfaas upload PATH --name NAME [--params FILE] [--labels FILE] [--replace]
                                         upload a .pb (+params), .keras, .tar.gz or .zip
                                         (--replace: then delete NAME's older versions)
  %tfaas predict [--version N] NAME EXPR predictions for EXPR (array, DataFrame with the
                                         model's keys as columns, dict, list): always a
                                         pandas DataFrame, one column per output label
  %%tfaas predict [--version N] NAME     the cell is the JSON input: {"keys","values"}
                                         or a list of rows (N: a version or a label)
  %tfaas delete NAME [--version N]       delete a model (or one version)
  %tfaas export DIR [--model NAME]       the models for TF Serving, Triton and KServe
  %tfaas score NAME DATA [--engine local|dask|spark|service] [--cluster VAR]
         [--output PATH] [--version N] [--key VAR]
                                         score a whole dataset (a variable, or Parquet
                                         paths) with the model, on that engine
  %tfaas curl NAME [--show-token]        a curl line doing a prediction from a shell
                                         (--show-token: reading the token from a 0600
                                         file, so the notebook never holds it)
  %tfaas key create NAME [--model M ...] [--scope manage] [--url] [--save PATH]
                                         a TFaaS key: predictions only (or manage), for
                                         M only, written to ~/.tfaas/keys/NAME.key (or
                                         PATH), never shown (--url: its key-bearing URL)
  %tfaas key list                        the keys (never their secrets)
  %tfaas key revoke NAME                 revoke a key at once
  %tfaas capture NAME [--since T] [--until T]
                                         the predictions captured for NAME (the server's
                                         TFaaSApp.capture_dir), as a DataFrame; T: an
                                         ISO 8601 time (UTC unless it names a zone)
  %tfaas browser                         a model browser widget (upload, delete, try it)
  %tfaas graph NAME [--version N]        the model's graph (Netron, served by the server)
  %tfaas connect URL [--token T]         use another server (no URL: find this kernel's)
  %tfaas help                            this text

The server is found with no configuration in a kernel started by Jupyter; elsewhere
use %tfaas connect, or set TFAAS_URL and TFAAS_TOKEN.
"""


# -- pure helpers (tested without a kernel) -------------------------------------


def key_instructions(created: dict[str, Any], path: Path, server: ServerInfo | None, *,
                     as_url: bool = False, example: Path | None = None,
                     model: str | None = None) -> str:
    """What ``%tfaas key create`` prints: where the key is and how to use it, never the
    key (a notebook saves its output). The lines run as printed: ``example`` is the file
    holding a request for ``model`` that they send (none: no model to call yet)."""
    covers = ", ".join(created.get("models") or []) or "all models"
    what = "key-bearing URL" if as_url else "key"
    lines = [f"key {created['name']} ({', '.join(created['scopes'])}; {covers}): its {what} "
             f"is in {path} (mode 0600), and nowhere else; treat that file as a password."]
    quoted = shlex.quote(str(path))
    if as_url:
        lines += ["Use it as the address of any client, e.g.:",
                  f'  python2 tfaas_client.py --url="$(cat {quoted})" --models']
        return "\n".join(lines)
    url = (server.public_url or server.url) if server else "URL/"
    if example is None or model is None:
        lines.append("Upload a model; then %tfaas key create prints how to call it with "
                     "this key (or see %tfaas curl NAME).")
        return "\n".join(lines)
    body = shlex.quote(str(example))
    lines += [
        f"An example request for {model} (a row of its width) is in {example}. Use the key "
        "with:",
        f"  tfaas --url={shlex.quote(url + 'tfaas')} --token-file={quoted} --predict={body}",
        f'  TFAAS_TOKEN="$(cat {quoted})" build/tfaas_example {shlex.quote(url)} '
        f"{shlex.quote(model)}",
        f"  curl -sS -H @<(printf 'Authorization: Bearer %s\\n' \"$(cat {quoted})\") "
        f"-d @{body} {shlex.quote(url + 'tfaas/json')}",
    ]
    return "\n".join(lines)


def _parse_labels(value: str | None) -> Any:
    """``--labels``: a labels.txt path, or labels separated by commas."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        return str(path)
    return [label.strip() for label in value.split(",") if label.strip()]


def _parse_params(value: str | None) -> Any:
    """``--params``: a params.json path, or the JSON itself."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        return str(path)
    try:
        doc = json.loads(value)
    except ValueError:
        raise UsageError(f"tfaas: --params {value!r} is neither a file nor JSON") from None
    if not isinstance(doc, dict):
        raise UsageError("tfaas: --params must be a JSON object")
    return doc


def parse_cell_input(text: str) -> tuple[Any, list[str] | None]:
    """The body of ``%%tfaas predict``: ``{"keys","values"}``, ``{key: value}``, a row or
    a list of rows. Answers (data, keys)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"tfaas: the cell is not JSON: {exc}") from None
    if isinstance(doc, dict) and "values" in doc:
        keys = doc.get("keys")
        return doc["values"], [str(k) for k in keys] if keys else None
    return doc, None


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are UsageErrors (argparse would exit the kernel)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"tfaas {self.prog.split()[-1]}: {message} (see %tfaas help)")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            print(message, file=sys.stderr)
        raise _Done()


class _Done(Exception):
    """``--help`` was printed: nothing more to do."""


def _parser(command: str, *args: tuple[Sequence[str], dict[str, Any]]) -> _Parser:
    parser = _Parser(prog=f"%tfaas {command}", add_help=True)
    for names, kwargs in args:
        parser.add_argument(*names, **kwargs)
    return parser


# -- the magics -------------------------------------------------------------------


@magics_class
class TFaaSMagics(Magics):
    """The ``%tfaas`` / ``%%tfaas`` magic and its subcommands."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self._client: TFaaSClient | None = None
        self._client_key: tuple[str, str | None] | None = None
        self._server: ServerInfo | None = None

    # -- connection ---------------------------------------------------------------

    def server(self) -> ServerInfo:
        """The server to use, found again each time (cheap: a file read or a cached
        ``connect``), so a restarted server or a new ``connect`` is picked up."""
        try:
            server = discovery.find_server()
        except DiscoveryError as exc:
            raise UsageError(str(exc)) from None
        self._server = server
        return server

    def client(self) -> TFaaSClient:
        server = self.server()
        key = (server.url, server.token)
        if self._client is None or self._client_key != key:
            if self._client is not None:
                self._client.close()
            self._client = TFaaSClient(server.url, token=server.token)
            self._client_key = key
        return self._client

    # -- entry point --------------------------------------------------------------

    @line_cell_magic
    def tfaas(self, line: str = "", cell: str | None = None) -> Any:
        line = line.strip()
        command, _, rest = line.partition(" ")
        command = command.strip()
        if command in ("", "help", "-h", "--help"):
            print(HELP)
            return None
        handler = getattr(self, f"_cmd_{command.replace('-', '_')}", None)
        if handler is None:
            raise UsageError(f"tfaas: unknown command {command!r}; see %tfaas help")
        if cell is not None and command != "predict":
            raise UsageError(f"tfaas: %%tfaas {command} takes no cell; only %%tfaas predict")
        try:
            if command == "predict":
                return handler(rest.strip(), cell)
            return handler(rest.strip())
        except _Done:
            return None
        except TFaaSClientError as exc:
            raise UsageError(f"tfaas {command}: {exc}") from None
        except ImportError as exc:  # an optional package this kernel lacks
            hint = missing_extra(f"%tfaas {command}", exc.name or "")
            if hint is None:
                raise
            raise UsageError(hint) from None
        except (OSError, ValueError, TypeError, DiscoveryError) as exc:
            raise UsageError(f"tfaas {command}: {exc}") from None

    # -- subcommands ----------------------------------------------------------------

    def _cmd_status(self, rest: str) -> None:
        _parser("status").parse_args(shlex.split(rest))
        client = self.client()
        status = client.status()
        print(format_status(status, self._server.tfaas_url if self._server else None))

    def _cmd_capture(self, rest: str) -> Any:
        args = _parser("capture", (["name"], {}), (["--since"], {}),
                       (["--until"], {})).parse_args(shlex.split(rest))
        return self.client().capture(args.name, since=args.since, until=args.until)

    def _cmd_models(self, rest: str) -> Any:
        _parser("models").parse_args(shlex.split(rest))
        import pandas  # noqa: F401 - the answer is a DataFrame
        models = self.client().models()
        if not models:
            print(f"no models on {self._server.url if self._server else 'the server'} yet; "
                  "upload one with %tfaas upload")
            return None
        return models_frame(models)

    def _cmd_upload(self, rest: str) -> None:
        args = _parser(
            "upload",
            (["model"], {"help": "a Keras model variable, or a model file/folder path"}),
            (["--name", "-n"], {"required": True, "help": "the model's name"}),
            (["--params", "-p"], {"help": "params.json file (or JSON)"}),
            (["--labels", "-l"], {"help": "labels.txt file, or labels separated by commas"}),
            (["--replace"], {"action": "store_true",
                             "help": "once stored, delete the model's earlier versions"}),
        ).parse_args(shlex.split(rest))
        model = self._resolve_model(args.model)
        client = self.client()
        answer = client.upload(args.name, model, params=_parse_params(args.params),
                               labels=_parse_labels(args.labels))
        replaced = self._delete_older(args.name, answer.get("version")) if args.replace else []
        labels = answer.get("labels")
        print(f"uploaded {answer.get('name')} version {answer.get('version')} "
              f"({answer.get('format')}; inputs {specs_text(answer.get('inputs'))}; "
              f"outputs {specs_text(answer.get('outputs'))}"
              + (f"; labels {', '.join(map(str, labels))}" if labels else "") + ")"
              + (f"; {answer['note']}" if answer.get("note") else "")
              + (f"; replaced version(s) {', '.join(map(str, replaced))}" if replaced else ""))

    def _delete_older(self, name: str, version: Any) -> list[int]:
        """``upload --replace``: delete the versions before ``version``, only after it is
        stored, so a failed upload leaves the model as it was."""
        client = self.client()
        older = [v for v in client.model(name).get("versions") or []
                 if isinstance(v, int) and isinstance(version, int) and v < version]
        for number in older:
            client.delete(name, number)
        return older

    def _resolve_model(self, text: str) -> Any:
        """A name in the user namespace (a live model) wins over a path of the same name."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        if text.isidentifier() and text in namespace:
            return namespace[text]
        path = Path(text).expanduser()
        if path.exists():
            return str(path)
        if self.shell is not None and not text.isidentifier():
            try:
                return self.shell.ev(text)
            except Exception:
                pass
        raise UsageError(
            f"tfaas upload: {text!r} is neither a variable of this notebook nor a file"
        )

    def _cmd_predict(self, rest: str, cell: str | None) -> Any:
        import pandas  # noqa: F401 - the answer is a DataFrame: say so before any request

        version = None
        tokens = rest.split(None, 1)
        while tokens and tokens[0] in ("--version", "-v"):
            more = tokens[1].split(None, 1) if len(tokens) > 1 else []
            if not more:
                raise UsageError("tfaas predict: --version needs a number or a label")
            version = _version(more[0])
            tokens = more[1].split(None, 1) if len(more) > 1 else []
        if not tokens:
            raise UsageError("tfaas predict: usage: %tfaas predict NAME EXPR "
                             "(or %%tfaas predict NAME with JSON in the cell)")
        name = tokens[0]
        expr = tokens[1].strip() if len(tokens) > 1 else ""
        keys = None
        index = None
        if cell is not None:
            if expr:
                raise UsageError("tfaas predict: give the input in the cell or on the line, "
                                 "not both")
            data, keys = parse_cell_input(cell)
        else:
            if not expr:
                raise UsageError("tfaas predict: what to predict? %tfaas predict NAME EXPR")
            if self.shell is None:
                raise UsageError(f"tfaas predict: no IPython shell to evaluate {expr!r} in")
            try:
                data = self.shell.ev(expr)
            except Exception as exc:
                raise UsageError(
                    f"tfaas predict: cannot evaluate {expr!r}: {type(exc).__name__}: {exc}"
                ) from None
            if hasattr(data, "columns") and hasattr(data, "index"):
                index = data.index
        # The client sends every value as it is (integers as integers, a DataFrame's
        # columns as the keys): no cast here.
        client = self.client()
        outputs = client.predict(name, data, keys=keys, version=version)
        try:
            model = client.model(name)
        except TFaaSClientError:
            model = None
        return predictions_frame(outputs, model, index)

    def _cmd_delete(self, rest: str) -> None:
        args = _parser(
            "delete",
            (["name"], {}),
            (["--version", "-v"], {"type": _version}),
        ).parse_args(shlex.split(rest))
        if isinstance(args.version, str):
            raise UsageError(f"tfaas delete: --version takes a number, not {args.version!r}")
        answer = self.client().delete(args.name, args.version)
        versions = answer.get("deleted_versions") if isinstance(answer, dict) else None
        print(f"deleted {args.name}" + (f" version(s) {versions}" if versions else ""))

    def _cmd_export(self, rest: str) -> None:
        args = _parser(
            "export",
            (["directory"], {}),
            (["--model", "-m"], {"help": "only this model"}),
        ).parse_args(shlex.split(rest))
        target = self.client().export(args.directory, args.model)
        print(f"exported to {target}: models/ (SavedModels), models.config (TF Serving), "
              "triton/ (Triton's model repository), kserve/ (InferenceService manifests)")

    def _cmd_score(self, rest: str) -> Any:
        args = _parser(
            "score",
            (["name"], {"help": "the model: NAME, NAME:LABEL or NAME:VERSION"}),
            (["data"], {"help": "a variable of this notebook, or a Parquet path"}),
            (["--engine", "-e"], {"choices": ["local", "dask", "spark", "service"]}),
            (["--cluster", "-c"], {"help": "a distributed.Client or SparkSession variable"}),
            (["--output", "-o"], {"help": "write Parquet files there"}),
            (["--version", "-v"], {"type": _version}),
            (["--batch-rows"], {"type": int}),
            (["--key", "-k"], {"help": "engine service: a variable holding the key the "
                                       "cluster's workers send (a predict-only TFaaS key)"}),
        ).parse_args(shlex.split(rest))
        namespace = self.shell.user_ns if self.shell is not None else {}
        if args.data in namespace:
            data = namespace[args.data]
        elif Path(args.data).expanduser().exists():
            data = str(Path(args.data).expanduser())
        else:
            raise UsageError(f"tfaas score: {args.data!r} is neither a variable of this "
                             "notebook nor a path")
        cluster = None
        if args.cluster:
            if args.cluster not in namespace:
                raise UsageError(f"tfaas score: no variable {args.cluster!r} in this notebook")
            cluster = namespace[args.cluster]
        key = None
        if args.key:  # a variable: the key itself never goes into the notebook's source
            if args.key not in namespace:
                raise UsageError(f"tfaas score: no variable {args.key!r} in this notebook")
            key = str(namespace[args.key])
        return self.client().score(args.name, data, engine=args.engine, cluster=cluster,
                                   output=args.output, batch_rows=args.batch_rows,
                                   version=args.version, key=key)

    def _cmd_curl(self, rest: str) -> None:
        args = _parser(
            "curl",
            (["name"], {}),
            (["--show-token"], {"action": "store_true",
                                "help": "write the token to a 0600 header file the line reads"}),
        ).parse_args(shlex.split(rest))
        client = self.client()
        model = client.model(args.name)
        server = self._server
        assert server is not None
        header_file = None
        if args.show_token and server.token:
            header_file = secretfiles.write_header_file(
                server.url, f"Authorization: token {server.token}")
            print(f"# the token is in {header_file} (mode 0600), which curl reads with "
                  "-H @FILE (curl 7.55 or later); the line below holds no secret")
        print(curl_command(server, args.name, model, header_file=header_file))

    def _cmd_key(self, rest: str) -> Any:
        """Keys for scripts, grid jobs and web pages (the owner's token only)."""
        args = _parser(
            "key",
            (["action"], {"choices": ["create", "list", "revoke"]}),
            (["name"], {"nargs": "?"}),
            (["--model", "-m"], {"action": "append", "help": "a model the key covers"}),
            (["--scope", "-s"], {"action": "append", "choices": ["predict", "manage"]}),
            (["--url"], {"action": "store_true",
                          "help": "save the key-bearing URL instead of the key"}),
            (["--save"], {"metavar": "PATH",
                          "help": "the file to write (default: ~/.tfaas/keys/NAME.key)"}),
        ).parse_args(shlex.split(rest))
        client = self.client()
        if args.action == "list":
            keys = client.keys()
            print(KEYS_NOTE)
            try:
                return keys_frame(keys)
            except ImportError:
                return keys
        if not args.name:
            raise UsageError(f"tfaas key {args.action}: give the key's NAME")
        if args.action == "revoke":
            client.revoke_key(args.name)
            print(f"revoked key {args.name}")
            return None
        scopes = sorted(set(args.scope or []) | {"predict"}) if args.scope else None
        path = secretfiles.key_path(args.name, args.save)  # refused before the key exists
        created = client.create_key(args.name, args.model, scopes)
        try:
            secretfiles.write_new(path, (created["url"] if args.url else created["key"]) + "\n")
        except OSError as exc:
            client.revoke_key(args.name)
            raise UsageError(f"tfaas key create: {exc}; the key was revoked") from None
        example = model = None
        if not args.url:
            model, example = self._write_example(client, path, args.name, args.model)
        print(key_instructions(created, path, self._server, as_url=args.url,
                               example=example, model=model))
        return None

    @staticmethod
    def _write_example(client: TFaaSClient, key_file: Path, name: str,
                       models: list[str] | None) -> tuple[str | None, Path | None]:
        """Write, beside the key, an example request for the key's first model (or the
        server's first one), which the printed lines send: (model, file)."""
        model: str | None = models[0] if models else None
        if model is None:
            listed = client.models()
            model = listed[0].get("name") if listed else None
        if model is None:
            return None, None
        try:
            doc = client.model(model)
        except TFaaSClientError:
            doc = None
        example = key_file.parent / f"{name}.example.json"
        example.write_text(json.dumps(example_request(model, doc)) + "\n", encoding="utf-8")
        return model, example

    def _cmd_connect(self, rest: str) -> None:
        args = _parser(
            "connect",
            (["url"], {"nargs": "?"}),
            (["--token", "-t"], {}),
        ).parse_args(shlex.split(rest))
        previous = discovery.explicit_server()
        if args.url:
            discovery.connect(args.url, args.token)
        else:
            discovery.disconnect()
        try:
            server = self.server()
            # A short timeout: a wrong URL should fail now, not in two minutes.
            with TFaaSClient(server.url, token=server.token, timeout=15) as probe:
                count = len(probe.models())
        except (UsageError, TFaaSClientError) as exc:
            discovery.use_server(previous)
            raise UsageError(f"tfaas connect: {exc}") from None
        print(f"tfaas: using {server.tfaas_url} ({server.source}; {count} model(s))")

    def _cmd_browser(self, rest: str) -> Any:
        _parser("browser").parse_args(shlex.split(rest))
        from .widgets import ModelBrowser

        client = self.client()
        server = self._server  # as client() found it: the browser's Copy curl names it
        assert server is not None
        return ModelBrowser(client, curl=lambda name, model, request: curl_command(
            server, name, model, request=request))

    def _cmd_graph(self, rest: str) -> Any:
        """The model's graph view in an IFrame: a path under the server's base URL, so
        the browser asks the server it shows the notebook from (a hub's proxy too)."""
        args = _parser(
            "graph", (["name"], {}), (["--version"], {"default": None}),
            (["--height"], {"type": int, "default": 600}),
        ).parse_args(shlex.split(rest))
        from IPython.display import IFrame

        server = self.server()
        return IFrame(graph_path(server.base_url, args.name, args.version),
                      width="100%", height=args.height)

    def _cmd_server(self, rest: str) -> None:
        """Where discovery points (undocumented: a debugging aid)."""
        server = self.server()
        print(f"{server.url} ({server.source})")


def _version(text: str) -> int | str:
    """A version number, or a version label (``stable``) for predict."""
    if not text.isdigit():
        if text.startswith("-"):
            raise UsageError(f"tfaas: version must be a number or a label, not {text!r}")
        return text
    number = int(text)
    if number < 1:
        raise UsageError("tfaas: version must be 1 or more")
    return number


# ``%tfaas?`` shows the magic's docstring as plain text: make it the full help, the
# same text as ``%tfaas help`` (IPython reads it from the function, not the class).
TFaaSMagics.tfaas.__doc__ = HELP


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext tfaas_jupyter``: register ``%tfaas``, and keep TensorFlow's C++
    chatter out of the cells that import it (:mod:`.quiet`)."""
    quiet_tensorflow()
    ipython.register_magics(TFaaSMagics)
