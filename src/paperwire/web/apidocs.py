"""/api/docs: the OpenAPI reference as one server-rendered page.

FastAPI's own Swagger page loads its script from a CDN and runs inline code, which
the Content-Security-Policy forbids (and which an offline server cannot fetch); the
spec itself is at /api/openapi.json for tools.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from .context import READ, WebContext, web_context

router = APIRouter(include_in_schema=False)
METHODS = ("get", "put", "post", "patch", "delete")


def _schema_name(schema: dict | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items'))}"
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    return schema.get("type", "")


def operations(spec: dict) -> list[dict]:
    found = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            found.append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": op.get("description", ""), "admin": bool(op.get("security")),
                "parameters": [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                                "type": _schema_name(p.get("schema")), "description": p.get("description", "")}
                               for p in op.get("parameters", [])],
                "body": _schema_name(body),
                "responses": [(code, r.get("description", "")) for code, r in op.get("responses", {}).items()],
            })
    return found


@router.api_route("/api/docs", methods=READ)
def api_docs(request: Request, web: WebContext = Depends(web_context)) -> Response:
    spec = request.app.openapi()
    schemas = {name: {"fields": [(field, _schema_name(s), field in schema.get("required", []))
                                 for field, s in schema.get("properties", {}).items()],
                      "description": schema.get("description", "")}
               for name, schema in spec.get("components", {}).get("schemas", {}).items()}
    return web.page(request, "api_docs.html.j2", title=spec["info"]["title"], api_version=spec["info"]["version"],
                    operations=operations(spec), schemas=schemas)
