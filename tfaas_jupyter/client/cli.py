"""``tfaas``: the command-line client, with the original ``tfaas_client.py``'s flags.

The original's commands work unchanged (``--url``, ``--upload=upload.json``,
``--bundle``, ``--models``, ``--delete``, ``--predict=input.json``, ``--image``
with ``--model``, ``--verbose``, ``--key``/``--cert``/``--capath``); ours add
``--token``, ``--json``, ``--status``, ``--params`` and ``--version``. ``--models`` and
``--status`` print a table and a summary for people, their JSON with ``--json``;
``--predict`` also reads a bare row, a list of rows, a ``.npy`` or a ``.csv`` file.

Any failure prints one line on stderr and exits 1 (usage errors exit 2), never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .api import TFaaSClient, TFaaSClientError, version_ref
from .inputfiles import InputFileError, read_input
from .present import format_status, model_rows, text_table
from .urls import redact_key

EXIT_FAILURE = 1
#: The columns of ``--models`` (``--json`` for everything).
MODEL_TABLE = ("name", "versions", "format", "inputs", "labels")
#: Said after a refusal for want of a (valid) token.
TOKEN_HINT = ("give a Jupyter token or a TFaaS key: --token-file FILE (its first line), "
              "the TFAAS_TOKEN environment variable, or as --url the Lab address with its "
              "?token=... (as Jupyter prints it at start)")


class CliError(Exception):
    """A problem with the command line or a local file, reported as one line."""


def _x509() -> str:
    """The original's default for --key/--cert: the grid proxy, when there is one."""
    proxy = os.environ.get("X509_USER_PROXY", "")
    if proxy:
        return proxy
    default = f"/tmp/x509up_u{os.getuid()}" if hasattr(os, "getuid") else ""
    return default if default and os.path.isfile(default) else ""


def _capath() -> str:
    path = os.environ.get("X509_CERT_DIR", "")
    if path and os.path.isdir(path):
        return path
    default = "/etc/grid-security/certificates"
    return default if os.path.isdir(default) else ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfaas",
        description="Client of TFaaS in Jupyter (and of the original TFaaS server).",
        epilog="URL: --url, else $TFAAS_URL; the server's URL, its tfaas/ URL or any "
               "address copied from the browser (.../lab/tree/x.ipynb?token=...). "
               "Token: --token, else the URL's ?token=, else $TFAAS_TOKEN, $JUPYTER_TOKEN, "
               "$JPY_API_TOKEN or $JUPYTERHUB_API_TOKEN.",
    )
    p.add_argument("--url", default=os.environ.get("TFAAS_URL", ""),
                   help="the Jupyter server's URL (http://host:8888/), its tfaas/ URL, or an "
                        "address copied from the browser")
    p.add_argument("--upload", metavar="upload.json",
                   help='upload a model described by {"name","model","params","labels"} paths')
    p.add_argument("--bundle", metavar="FILE.tar.gz",
                   help="upload a tarball whose top folder is the model (SavedModel)")
    p.add_argument("--models", action="store_true", help="list the models")
    p.add_argument("--delete", metavar="NAME", help="delete a model (or --version of it)")
    p.add_argument("--predict", metavar="INPUT",
                   help='predict for a JSON file ({"keys": [...], "values": [...], "model": '
                        '"..."}, a row [...] or a list of rows), a .npy or a .csv file (a '
                        "header line names the keys); --model names the model when the file "
                        "does not")
    p.add_argument("--image", metavar="FILE", help="classify an image (png/jpg) with --model")
    p.add_argument("--model", help="the model for --image; overrides input.json's model")
    p.add_argument("--verbose", action="store_true", help="print what is sent (on stderr)")
    p.add_argument("--key", dest="ckey", default=_x509(),
                   help="TLS client key (default: $X509_USER_PROXY)")
    p.add_argument("--cert", default=_x509(), help="TLS client certificate")
    p.add_argument("--capath", default=_capath(), help="CA certificates directory")
    p.add_argument("--token", default=None,
                   help="Jupyter token or TFaaS key (default: the URL's ?token=, else the "
                        "environment; prefer --token-file or $TFAAS_TOKEN: "
                        "a command line is visible to other users)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="read the token or TFaaS key from FILE (first line)")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output (one JSON line; --models and --status "
                        "print tables and a summary without it)")
    p.add_argument("--status", action="store_true", help="the server's status")
    p.add_argument("--params", metavar="NAME", help="a model's params.json")
    p.add_argument("--export", metavar="DIR",
                   help="write the models (or --model) for TF Serving, Triton and KServe")
    p.add_argument("--version", type=version_ref, default=None,
                   help="model version for --predict, --image, --delete, --params; "
                        "--predict and --image also take a version label (stable)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for answers")
    return p


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.url.lower().startswith("https"):
        return None
    capath = args.capath if args.capath and os.path.isdir(args.capath) else None
    context = ssl.create_default_context(capath=capath) if capath else \
        ssl.create_default_context()
    if args.cert and args.ckey:
        try:
            context.load_cert_chain(args.cert, args.ckey)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"cannot load the client certificate {args.cert}: {exc}") from None
    return context


def _read_json(path: str, what: str) -> Any:
    file = Path(path).expanduser()
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"{what} file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {what} file {file}: {exc}") from None
    except ValueError as exc:
        raise CliError(f"{what} file {file} is not valid JSON: {exc}") from None


def _upload_path(value: Any, key: str, upload_json: Path) -> Path:
    """A file named in upload.json: as written (``~`` expanded, relative to the current
    folder), else the file of that name beside upload.json (so a moved folder works)."""
    if not isinstance(value, str) or not value:
        raise CliError(f"upload file {upload_json}: {key!r} must be a file path")
    path = Path(value).expanduser()
    if path.exists():
        return path
    beside = upload_json.parent / path.name
    if beside.exists():
        return beside
    raise CliError(f"{key} file not found: {path} (named in {upload_json})")


def _progress(args: argparse.Namespace) -> Callable[[int, int], None] | None:
    """A tqdm bar on stderr when it is a terminal (and tqdm is installed)."""
    if args.json or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar: dict[str, Any] = {}

    def update(sent: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                              desc="upload", file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(sent - b.n)
        if sent >= total:
            b.close()

    return update


def _number(version: int | str | None, option: str) -> int | None:
    """A version number for options that take no label."""
    if isinstance(version, str):
        raise CliError(f"{option} takes a version number, not the label {version!r}")
    return version


def _print(args: argparse.Namespace, doc: Any, *, compact: bool = False) -> None:
    if args.json or compact:
        print(json.dumps(doc, separators=(",", ":") if args.json else None))
    else:
        print(json.dumps(doc, indent=1))


def _token_file(path: str | None) -> str | None:
    if not path:
        return None
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read --token-file {path}: {exc.strerror or exc}") from None
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise CliError(f"--token-file {path} is empty")
    return lines[0].strip()


def run(args: argparse.Namespace) -> int:
    if not args.url:
        raise CliError("no server URL: give --url (or set TFAAS_URL)")
    token = args.token if args.token is not None else _token_file(args.token_file)
    try:
        client = TFaaSClient(args.url, token=token, timeout=args.timeout,
                             ssl_context=_ssl_context(args),
                             user_agent=None, verbose=args.verbose)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.verbose:
        print(f"tfaas: url {redact_key(client.url)}, token {'given' if client.token else 'none'}",
              file=sys.stderr)
    did = False
    with client:
        if args.upload:  # the original runs an upload, then any other command
            did = True
            upload_json = Path(args.upload).expanduser()
            spec = _read_json(args.upload, "upload")
            if not isinstance(spec, dict) or "model" not in spec:
                raise CliError(f"upload file {upload_json} must name at least 'model'")
            model = _upload_path(spec["model"], "model", upload_json)
            params = _upload_path(spec["params"], "params", upload_json) \
                if spec.get("params") else None
            labels = _upload_path(spec["labels"], "labels", upload_json) \
                if spec.get("labels") else None
            name = spec.get("name")
            if not name and params is not None:
                name = _read_json(str(params), "params").get("name")
            if not name:
                raise CliError(f"upload file {upload_json} gives no model 'name'")
            if args.verbose:
                print(f"tfaas: upload {name}: model {model}, params {params}, labels {labels}",
                      file=sys.stderr)
            _print(args, client.upload(str(name), model, params=params, labels=labels,
                                       progress=_progress(args)))
        if args.bundle:
            did = True
            bundle = Path(args.bundle).expanduser()
            if not bundle.is_file():
                raise CliError(f"bundle file not found: {bundle}")
            _print(args, client.upload_bundle(bundle, progress=_progress(args)))
        elif args.delete:
            did = True
            _print(args, client.delete(args.delete, _number(args.version, "--delete")))
        elif args.export:
            did = True
            target = client.export(args.export, args.model or None)
            _print(args, {"exported": str(target), "models_config": str(target / "models.config"),
                          "triton": str(target / "triton")})
        elif args.models:
            did = True
            models = client.models()
            if args.json:
                _print(args, models)
            elif models:
                print(text_table(model_rows(models), MODEL_TABLE))
            else:
                print("no models yet")
        elif args.predict:
            did = True
            try:
                doc = read_input(args.predict)
            except InputFileError as exc:
                raise CliError(str(exc)) from None
            if args.model:
                doc["model"] = args.model
            if args.version is not None:
                doc["version"] = args.version
            if args.verbose:
                print(f"tfaas: predict with model {doc.get('model')!r}, "
                      f"{len(doc.get('values', []))} values", file=sys.stderr)
            values = doc.get("values")
            if isinstance(values, np.ndarray) and values.ndim == 2 and doc.get("model"):
                # a .npy file's rows: binary tensors, or shared memory on the same machine
                # (TFaaSClient.predict); the outputs as one JSON list of rows
                _print(args, client.predict(doc["model"], values,
                                            version=doc.get("version")).tolist(), compact=True)
            else:
                # As the original: the server's list printed bare, on one line.
                _print(args, client.predict_raw(doc), compact=True)
        elif args.image:
            did = True
            if not args.model:
                raise CliError("--image needs --model=NAME")
            if not Path(args.image).expanduser().is_file():
                raise CliError(f"image file not found: {args.image}")
            _print(args, client.image(args.model, Path(args.image).expanduser(),
                                      version=args.version), compact=True)
        elif args.params:
            did = True
            _print(args, client.params(args.params, _number(args.version, "--params")))
        elif args.status:
            did = True
            status = client.status()
            if args.json:
                _print(args, status)
            else:
                print(format_status(status, redact_key(client.url)))
    if not did:
        raise CliError("nothing to do: give one of --upload, --bundle, --models, --delete, "
                       "--predict, --image, --params, --status (see --help)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # nothing asked: say what can be asked
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    try:
        return run(args)
    except TFaaSClientError as exc:
        _fail(args, exc.message, exc.status)
    except CliError as exc:
        _fail(args, str(exc), None)
    except BrokenPipeError:
        # the reader went away (`tfaas ... | head`): as other command-line tools, say
        # nothing; point stdout at devnull so the interpreter's final flush is quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (OSError, ValueError, TypeError) as exc:
        _fail(args, f"{exc}", None)
    except KeyboardInterrupt:
        _fail(args, "interrupted", None)
    return EXIT_FAILURE


def _fail(args: argparse.Namespace, message: str, status: int | None) -> None:
    hint = TOKEN_HINT if status in (401, 403) else None
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "status": status,
                          **({"hint": hint} if hint else {})}), file=sys.stderr)
    else:
        where = f" (HTTP {status})" if status else ""
        print(f"tfaas: error: {message}{where}" + (f"; {hint}" if hint else ""),
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
