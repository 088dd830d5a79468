"""The OpenAPI document as client generators need it.

FastAPI's defaults read badly in generated clients (`create_style_api_v1_styles_post`,
`BodyCreateStyleApiV1StylesPost`) and describe an upload as `{"type": "string", "contentMediaType":
"application/octet-stream"}` (OpenAPI 3.1), which openapi-python-client and others turn into a text field:
the server then answers `image: Expected UploadFile`. Here operation ids are the routes' own names, unique
across the API (`create_style`, `rate_candidate`; with the tags, generated clients read `styles.create_style`),
multipart bodies get names, and file fields also say `format: binary`, which every generator understands.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

# FastAPI names a multipart body after the operation id; clients should see these names instead. The upload
# is StyleCreate's fields plus the image, so it is not named StyleCreate (that JSON schema is app/domain/schemas.py's).
BODY_NAMES = {"Body_create_style": "StyleUpload"}

# Examples of request bodies that have no pydantic model of their own (multipart forms).
BODY_EXAMPLES: dict[str, dict[str, Any]] = {
    "StyleUpload": {"content": "a house", "descriptor": "watercolor painting", "adapter": "styledrop",
                    "steps": 1000, "seed": 0},
}


def operation_id(route: APIRoute) -> str:
    """The route's name, e.g. `create_style`: openapi-python-client puts it in the module of its tag, as
    `styles.create_style`. Names are unique across the API (tests/service/test_api_contract.py checks)."""
    return route.name


def _walk(node: Any, visit) -> None:  # noqa: ANN001
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _fix(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.get("components", {}).get("schemas", {})
    for old, new in BODY_NAMES.items():
        if old in components:
            components[new] = components.pop(old)
            components[new]["title"] = new
    refs = {f"#/components/schemas/{old}": f"#/components/schemas/{new}" for old, new in BODY_NAMES.items()}

    def visit(node: dict[str, Any]) -> None:
        if node.get("$ref") in refs:
            node["$ref"] = refs[node["$ref"]]
        if node.get("type") == "string" and node.get("contentMediaType") == "application/octet-stream":
            node["format"] = "binary"

    _walk(schema, visit)
    for name, example in BODY_EXAMPLES.items():
        if name in components:
            components[name]["examples"] = [example]
    return schema


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with one that builds the fixed document once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _fix(get_openapi(title=app.title, version=app.version,
                                                  description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
