"""The original TFaaS protocol: ``json`` (rows of values, columns named by keys),
``proto`` (a serialized ``tfaaspb.Row``) and ``image`` (a picture and a model name),
over the protocol-neutral core."""

from __future__ import annotations

import asyncio

from .. import codecs, shaping
from ..errors import BadRequest, of_model
from ..keys import Grant
from ..modelfiles import ModelVersion
from ..multipart import FilePart, Form
from ..service import TFaaS
from ..timing import Stages


async def predict_json(core: TFaaS, body: bytes, grant: Grant | None = None,
                       stages: Stages | None = None) -> tuple[str, int, bytes]:
    """``{"keys", "values", "model"}`` in: answers (model name, rows, the JSON body)."""
    with core.admit():
        request = codecs.decode_json_request(
            body, max_rows=core.limits.max_rows, max_values=core.limits.max_values
        )
        mv, outputs = await core.predict_rows(
            request.model, request.version, request.values, request.keys, grant, stages
        )
        n_rows = request.values.shape[0]
        return mv.name, n_rows, codecs.encode_json_rows(outputs, request.single_row)


async def predict_proto(core: TFaaS, body: bytes, grant: Grant | None = None,
                        stages: Stages | None = None) -> tuple[str, bytes]:
    """A serialized ``tfaaspb.Row`` in: answers (model name, serialized Predictions)."""
    with core.admit():
        request = codecs.decode_proto_row(body, max_values=core.limits.max_values)
        mv, outputs = await core.predict_rows(request.model, None, request.values,
                                              request.keys, grant, stages)
        return mv.name, codecs.encode_proto_predictions(outputs, mv.labels)


async def predict_image(core: TFaaS, form: Form, grant: Grant | None = None,
                        stages: Stages | None = None) -> tuple[str, bytes]:
    """A form with an ``image`` part and ``model`` (and ``version``): answers (model
    name, the top labels as JSON)."""
    with core.admit():
        part = form.files.get("image")
        if part is None:
            raise BadRequest("unable to read image: the request has no file part named 'image'")
        mv = core.resolve(form.text("model"), form.text("version"), grant=grant)
        with of_model(mv.name):
            return mv.name, await _image_answer(core, mv, part, stages)


async def _image_answer(core: TFaaS, mv: ModelVersion, part: FilePart,
                        stages: Stages | None) -> bytes:
    layout = shaping.image_layout(mv.name, await core.signature(mv, stages), mv.params)
    data = await asyncio.to_thread(part.read_bytes)
    height, width = codecs.image_size(data, max_pixels=core.limits.max_image_pixels)
    shaping.check_image_fits(mv.name, layout, height, width)
    image = await asyncio.to_thread(
        codecs.decode_image, data, channels=layout.channels, size=layout.size,
        max_pixels=core.limits.max_image_pixels,
    )
    inputs = [shaping.image_input(image, layout)]
    outputs = shaping.output_rows(await core.run(mv, inputs, stages), 1)
    return codecs.encode_image_answer(outputs, part.filename, mv.labels)
