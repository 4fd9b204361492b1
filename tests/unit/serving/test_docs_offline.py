"""`/docs` works without internet: every asset it references is served by the app itself."""

from __future__ import annotations

import re
from typing import Any


def test_docs_reference_only_local_assets_that_answer(client: Any) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)  # the spec Swagger UI loads
    assert len(urls) >= 3, page.text
    for url in urls:
        assert not re.match(r"^(https?:)?//", url), f"/docs loads {url} from the internet"
        assert client.get(url).status_code == 200, url
    assert "/openapi.json" in urls
    assert "http" not in page.text  # no absolute URL at all


def test_the_bundle_is_the_swagger_ui_script(client: Any) -> None:
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN: not offered
