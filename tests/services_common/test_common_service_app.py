"""errors, auth, body limit, health and metrics wired into one small app."""

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import Counter
from pydantic import BaseModel, Field

from services.common import (
    BodySizeLimitMiddleware,
    NotFoundError,
    OverloadedError,
    health_router,
    install_error_handlers,
    metrics_router,
    new_registry,
    require_api_key,
)


class Echo(BaseModel):
    texts: list[str] = Field(min_length=1)


def build_app(api_key: str | None = None, ready: bool = True) -> FastAPI:
    registry = new_registry()
    hits = Counter("rlaif_test_hits_total", "hits", registry=registry)
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=200)
    app.include_router(health_router(lambda: ready))
    app.include_router(metrics_router(registry))

    @app.post("/echo", dependencies=[Depends(require_api_key(api_key))])
    def echo(body: Echo) -> dict:
        hits.inc()
        return {"n": len(body.texts)}

    @app.get("/missing")
    def missing() -> None:
        raise NotFoundError("unknown rubric 'x'")

    @app.get("/busy")
    def busy() -> None:
        raise OverloadedError("queue full", retry_after=2.4)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret /etc/passwd detail")

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_app(), raise_server_exceptions=False)


def assert_error(response, status: int, error_type: str) -> str:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == error_type
    assert error["code"] == status
    return error["message"]


def test_malformed_json_is_400_saying_json(client):
    response = client.post(
        "/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "JSON" in assert_error(response, 400, "invalid_request_error")


def test_invalid_field_is_400_naming_the_field(client):
    message = assert_error(
        client.post("/echo", json={"texts": []}), 400, "invalid_request_error"
    )
    assert message.startswith("texts:")
    message = assert_error(
        client.post("/echo", json={"txts": ["a"]}), 400, "invalid_request_error"
    )
    assert "texts" in message


def test_body_over_limit_is_413_even_without_content_length(client):
    response = client.post("/echo", json={"texts": ["x" * 300]})
    assert_error(response, 413, "request_too_large")

    def chunks():
        yield b'{"texts": ["'
        yield b"y" * 300
        yield b'"]}'

    response = client.post(
        "/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "request_too_large")


def test_service_errors_keep_status_and_retry_after(client):
    assert_error(client.get("/missing"), 404, "not_found_error")
    response = client.get("/busy")
    assert_error(response, 503, "overloaded_error")
    assert response.headers["retry-after"] == "2"


def test_unexpected_exception_is_500_without_details(client):
    response = client.get("/boom")
    message = assert_error(response, 500, "internal_error")
    assert "passwd" not in response.text and "Traceback" not in response.text
    assert "server log" in message


def test_unknown_route_is_json_404(client):
    assert "/nowhere" in assert_error(client.get("/nowhere"), 404, "not_found_error")


def test_api_key_is_required_when_configured():
    client = TestClient(build_app(api_key="s3cret"))
    body = {"texts": ["a"]}
    response = client.post("/echo", json=body)
    assert_error(response, 401, "authentication_error")
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/echo", json=body, headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "authentication_error")
    ok = client.post("/echo", json=body, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json() == {"n": 1}


def test_health_and_readiness():
    ready = TestClient(build_app(ready=True))
    assert ready.get("/healthz").json() == {"status": "ok"}
    assert ready.get("/readyz").status_code == 200
    loading = TestClient(build_app(ready=False))
    assert loading.get("/healthz").status_code == 200
    assert loading.get("/readyz").status_code == 503


def test_metrics_count_requests_of_this_app_only(client):
    for _ in range(3):
        client.post("/echo", json={"texts": ["a"]})
    other = TestClient(build_app())
    other.post("/echo", json={"texts": ["a"]})
    text = client.get("/metrics").text
    assert "rlaif_test_hits_total 3.0" in text
