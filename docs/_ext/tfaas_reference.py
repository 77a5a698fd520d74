"""Reference pages generated from the code, so they cannot drift from it.

- ``tfaas-config``: every configurable traitlet of ``TFaaSApp`` (its type, default,
  help and command-line form), read from the class itself;
- ``tfaas-openapi``: every operation of the server's own ``openapi.json`` (the file the
  server serves at ``{base_url}tfaas/openapi.json``), with its parameters, request
  bodies and answers.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _literal(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def _item(term: list[nodes.Node], *body: nodes.Node) -> nodes.definition_list_item:
    return nodes.definition_list_item("", nodes.term("", "", *term),
                                      nodes.definition("", *body))


def _para(*parts: nodes.Node | str) -> nodes.paragraph:
    para = nodes.paragraph()
    for part in parts:
        para += nodes.Text(part) if isinstance(part, str) else part
    return para


class ConfigReference(SphinxDirective):
    """Every ``TFaaSApp`` setting, from the traitlets themselves."""

    def run(self) -> list[nodes.Node]:
        from tfaas_jupyter.server.app import TFaaSApp

        listing = nodes.definition_list()
        traits = TFaaSApp.class_own_traits(config=True)
        for name in sorted(traits):
            trait = traits[name]
            default = trait.default_value_repr()
            dynamic = f"_{name}_default" in dir(TFaaSApp) or name in getattr(
                TFaaSApp, "_trait_default_generators", {})
            body: list[nodes.Node] = [
                _para(f"{type(trait).__name__}; default ",
                      _literal(default),
                      " (computed when the server starts)" if dynamic else ""),
                _para(" ".join((trait.help or "").split())),
                _para("Command line: ", _literal(f"--TFaaSApp.{name}=...")),
            ]
            listing += _item([_literal(f"c.TFaaSApp.{name}")], *body)
        return [listing]


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items') or {})}"
    return str(schema.get("type") or "object")


class OpenAPIReference(SphinxDirective):
    """Every operation of ``tfaas_jupyter/server/openapi.json``."""

    def run(self) -> list[nodes.Node]:
        from tfaas_jupyter.server.openapi import load_spec

        spec = load_spec()
        out: list[nodes.Node] = [_para(spec["info"]["title"], ", version ",
                                       _literal(str(spec["info"]["version"])), ".")]
        for path, item in spec["paths"].items():
            for method in METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                title = f"{method.upper()} {{base_url}}tfaas{path}"
                out.append(nodes.rubric("", "", _literal(title)))
                if operation.get("summary"):
                    out.append(_para(operation["summary"]))
                if operation.get("description"):
                    out.append(_para(" ".join(operation["description"].split())))
                details = nodes.definition_list()
                for param in item.get("parameters", []) + operation.get("parameters", []):
                    if "$ref" in param:
                        param = spec["components"]["parameters"][param["$ref"].rsplit("/", 1)[-1]]
                    details += _item(
                        [_literal(param["name"]), nodes.Text(f" ({param['in']})")],
                        _para(_schema_name(param.get("schema") or {}),
                              ", required. " if param.get("required") else ". ",
                              " ".join((param.get("description") or "").split())))
                body = operation.get("requestBody")
                if body:
                    if "$ref" in body:
                        body = spec["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[-1]]
                    kinds = ", ".join(f"{ctype} ({_schema_name(media.get('schema') or {})})"
                                      for ctype, media in body.get("content", {}).items())
                    details += _item([nodes.Text("request body")], _para(kinds))
                for code, answer in operation.get("responses", {}).items():
                    if "$ref" in answer:
                        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
                    text = " ".join((answer.get("description") or "").split())
                    kinds = ", ".join(answer.get("content", {}))
                    details += _item([_literal(str(code))],
                                     _para(text + (f" ({kinds})" if kinds else "")))
                out.append(details)
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("tfaas-config", ConfigReference)
    app.add_directive("tfaas-openapi", OpenAPIReference)
    return {"parallel_read_safe": True, "version": "1"}
