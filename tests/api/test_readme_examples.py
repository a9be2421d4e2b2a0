"""Every curl example of the README's API reference works as documented, in document order: the
status, and, where the README shows the answer, its shape (the same keys at every level and the
same JSON type for every documented value, so "amount": 150.75 stays a number)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from support import ADMIN_TOKEN, readme_curl_examples

from api.app import create_app
from engine.service import Engine

# By method and path (the README's example id as {id}); anything else answers 200.
EXPECTED_STATUS = {
    "POST /payment": 201,
    "POST /simulations": 202,
    "POST /policies": 201,
    "POST /transaction/{id}/dispute": 201,
}
README_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_every_readme_curl_example_answers_as_documented(tmp_path) -> None:
    examples = readme_curl_examples()
    resources = {e.path.split("/")[1] for e in examples}
    assert {"payment", "transaction", "audit", "stats", "admin", "health"} <= resources

    engine = Engine.open(
        tmp_path / "readme.duckdb", seed=1, admin_token=ADMIN_TOKEN, backup_interval_s=0
    )
    with TestClient(create_app(engine)) as client:
        created_id = None
        for example in examples:
            path = example.path
            if created_id is not None:  # the README shows an example id: use the one just made
                path = README_ID.sub(created_id, path)
            headers = {
                name: value.replace("$PTSIM_ADMIN_TOKEN", ADMIN_TOKEN)
                for name, value in example.headers.items()
            }
            response = client.request(example.method, path, headers=headers, json=example.body)
            key = f"{example.method} /{path.split('/')[1]}"
            expected = EXPECTED_STATUS.get(f"{example.method} {README_ID.sub('{id}', path)}", 200)
            if isinstance(example.answer, dict) and "error" in example.answer:
                expected = 400  # an example of a refused request
            assert response.status_code == expected, (path, response.text)
            if expected == 400:
                assert response.json()["error"]["field"] == example.answer["error"]["field"]
            if example.answer is not None:
                assert_same_shape(example.answer, response.json(), path)
            if key == "POST /payment" and created_id is None:
                created_id = response.json()["transaction_id"]
    engine.close()


def assert_same_shape(documented: Any, actual: Any, where: str) -> None:
    """``actual`` has the documented keys at every level, and every value the README shows
    (other than null) has the same JSON type: number, string, boolean, object or list."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict), where
        assert set(actual) == set(documented), (where, set(actual) ^ set(documented))
        for name, value in documented.items():
            assert_same_shape(value, actual[name], f"{where}.{name}")
    elif isinstance(documented, list):
        assert isinstance(actual, list) and actual, where
        assert_same_shape(documented[0], actual[0], f"{where}[0]")
    elif documented is not None:
        assert _json_type(actual) == _json_type(documented), (where, actual, documented)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else type(value).__name__
