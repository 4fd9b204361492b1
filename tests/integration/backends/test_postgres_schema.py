"""`?schema=` on the feature registry: its tables in that schema, created if missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsd.features.handbook import CUSTOMER_VIEW, TERMINAL_VIEW
from mlsd.features.store import FeatureStore
from mlsd.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def new_schemas(postgres_url: str, run_id: str) -> Iterator[list[str]]:
    """Two schema names that do not exist yet; dropped afterwards."""
    import psycopg

    names = [f"mlsdtest_{run_id}_a", f"mlsdtest_{run_id}_b"]
    yield names
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_feature_registry_in_the_urls_schema(
    tmp_path: Path, postgres_url: str, new_schemas: list[str]
) -> None:
    import psycopg

    first, second = (
        FeatureStore.open(
            Settings(home=tmp_path / s, feature_registry=f"{postgres_url}?schema={s}")
        )
        for s in new_schemas
    )
    try:
        first.apply([CUSTOMER_VIEW])
        second.apply([TERMINAL_VIEW])
        assert first.registry.current() == {"customer_spending": CUSTOMER_VIEW.version}
        assert second.registry.current() == {"terminal_risk": TERMINAL_VIEW.version}
    finally:
        first.close()
        second.close()
    with psycopg.connect(postgres_url) as conn:
        for name in new_schemas:
            row = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (name,),
            ).fetchone()
            assert row == (2,)  # both tables, in the schema the URL named


@pytest.mark.parametrize("kind", ["feature_registry", "registry_db", "prediction_log"])
def test_every_postgres_backend_creates_the_urls_schema(
    kind: str, tmp_path: Path, postgres_url: str, new_schemas: list[str]
) -> None:
    import psycopg

    from mlsd.backends import open_backend

    schema = new_schemas[0]
    settings = Settings(home=tmp_path, **{kind: f"{postgres_url}?schema={schema}"})
    backend = open_backend(kind, settings)
    close = getattr(backend, "close", None)
    assert close is not None
    close()
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
    assert row is not None
    assert row[0] >= 1
