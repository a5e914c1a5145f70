"""The Open Inference Protocol (KServe v2, Triton, MLServer) over HTTP.

A model is an endpoint; its versions are the endpoint's variants. ``/v2/models/fraud`` routes
by weight like InvokeEndpoint, ``/v2/models/fraud.B`` (or ``/v2/models/fraud/versions/B``)
targets variant ``B``. Errors are ``{"error": "..."}``: 400 for a request the model cannot
read, 404 for an unknown model or version, 413 for a body over 6 MiB, 408/504 when the body
or the model is slower than the per-request timeout, 500 when the model itself fails.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard._version import __version__
from shipyard.core.errors import InvalidRequestError, ModelFault, NotFoundError
from shipyard.core.http import read_body_within
from shipyard.serve.endpoints import EndpointService
from shipyard.serve.errors import InvocationTimeout, TargetError
from shipyard.serve.runtime import EndpointRuntime, LoadedVariant, Target
from shipyard.serve.sagemaker import MAX_BODY_BYTES
from shipyard.serve.tensors import (
    HEADER_LENGTH,
    SIGNATURE_TYPES,
    encode_infer_response,
    parse_infer_request,
    tensors_frame,
)

EXTENSIONS = ["binary_tensor_data"]


def v2_error(status: int, message: str) -> Response:
    return Response(
        orjson.dumps({"error": message}), status_code=status, media_type="application/json"
    )


def create_v2_routes(service: EndpointService, *, timeout_s: float) -> list[Route]:
    """Health, server and model metadata, model readiness and inference under /v2."""

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        return _json({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return _json({"name": "shipyard", "version": __version__, "extensions": EXTENSIONS})

    async def model_metadata(request: Request) -> Response:
        try:
            runtime, variant = _resolve(service, request)
        except (NotFoundError, TargetError) as exc:
            return v2_error(404, str(exc))
        except InvalidRequestError as exc:
            return v2_error(400, str(exc))
        return _json(_metadata(runtime, variant))

    async def model_ready(request: Request) -> Response:
        try:
            runtime, _ = _resolve(service, request)
        except (NotFoundError, TargetError) as exc:
            return v2_error(404, str(exc))
        except InvalidRequestError as exc:
            return v2_error(400, str(exc))
        return _json({"name": request.path_params["name"], "ready": True})

    async def infer(request: Request) -> Response:
        return await _infer(service, request, timeout_s)

    model = "/v2/models/{name}"
    version = model + "/versions/{version}"
    return [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route(model, model_metadata, methods=["GET"]),
        Route(version, model_metadata, methods=["GET"]),
        Route(model + "/ready", model_ready, methods=["GET"]),
        Route(version + "/ready", model_ready, methods=["GET"]),
        Route(model + "/infer", infer, methods=["POST"]),
        Route(version + "/infer", infer, methods=["POST"]),
    ]


async def _infer(service: EndpointService, request: Request, timeout_s: float) -> Response:
    try:
        runtime, variant = _resolve(service, request)
    except (NotFoundError, TargetError) as exc:
        return v2_error(404, str(exc))
    except InvalidRequestError as exc:
        return v2_error(400, str(exc))
    body: bytes | None = b""
    with anyio.move_on_after(timeout_s) as reading:
        body = await read_body_within(request, MAX_BODY_BYTES)
    if reading.cancelled_caught:
        return v2_error(408, f"the request body did not arrive within {timeout_s:g} s")
    if body is None:
        return v2_error(413, f"the body is larger than the limit of {MAX_BODY_BYTES} bytes")
    try:
        parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
        _check_outputs(runtime, parsed.outputs)
    except InvalidRequestError as exc:
        return v2_error(400, str(exc))
    rows = functools.partial(tensors_frame, parsed.inputs)
    target = Target(variant=variant.name if variant is not None else None)
    try:
        scored = await service.invoke(runtime.name, rows, target, timeout_s=timeout_s)
    except (NotFoundError, TargetError) as exc:
        return v2_error(404, str(exc))
    except InvalidRequestError as exc:
        return v2_error(400, str(exc))
    except InvocationTimeout as exc:
        return v2_error(504, str(exc))
    except ModelFault as exc:
        return v2_error(500, str(exc))
    body, headers = encode_infer_response(
        scored.scores,
        model_name=request.path_params["name"],
        model_version=scored.variant,
        output_name=scored.output_name,
        request=parsed,
        parameters={
            "model_package": str(scored.ref),
            "unseen_categories": scored.unseen_categories,
        },
    )
    return Response(body, headers=headers)


def _resolve(
    service: EndpointService, request: Request
) -> tuple[EndpointRuntime, LoadedVariant | None]:
    """The endpoint and, if the name or path targets one, the variant ("fraud.B")."""
    name = request.path_params["name"]
    endpoint, _, from_name = name.partition(".")
    from_path = request.path_params.get("version")
    if from_name and from_path and from_name != from_path:
        raise InvalidRequestError(
            f"model {name!r} names version {from_name!r} but the path asks for {from_path!r}"
        )
    runtime = service.runtime(endpoint)
    wanted = from_name or from_path
    if not wanted:
        return runtime, None
    for variant in runtime.variants:
        if variant.name == wanted:
            return runtime, variant
    versions = ", ".join(v.name for v in runtime.variants)
    raise TargetError(f"model {endpoint!r} has no version {wanted!r}; versions: {versions}")


def _metadata(runtime: EndpointRuntime, variant: LoadedVariant | None) -> dict[str, Any]:
    """Model metadata; without a version, that of the endpoint's first variant."""
    described = variant or runtime.variants[0]
    return {
        "name": runtime.name if variant is None else f"{runtime.name}.{variant.name}",
        "versions": [v.name for v in runtime.variants],
        "platform": f"shipyard-{described.model.framework}",
        "inputs": [
            {"name": column, "datatype": SIGNATURE_TYPES[kind], "shape": [-1]}
            for column, kind in described.model.input_types.items()
        ],
        "outputs": [{"name": described.output_name, "datatype": "FP64", "shape": [-1]}],
        "parameters": {"model_package": str(described.ref)},
    }


def _check_outputs(runtime: EndpointRuntime, requested: dict[str, bool | None] | None) -> None:
    known = {v.output_name for v in runtime.variants}
    unknown = [name for name in requested or {} if name not in known]
    if unknown:
        raise InvalidRequestError(
            f"output(s) {', '.join(unknown)} do not exist; the model outputs "
            + ", ".join(sorted(known))
        )


def _json(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")
