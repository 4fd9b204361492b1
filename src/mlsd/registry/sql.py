"""The SQL both metadata backends share; each backend supplies a connection and a dialect.

This module holds versions, tags, search and environments; `sql_aliases` holds
alias moves and gate decisions; `sql_rollouts` the rollout state; `sql_schema` the
tables. A parsed-version cache makes repeated reads cheap without ever serving stale tags
or status.
"""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from mlsd.errors import NotFoundError, ValidationError
from mlsd.registry.models import BODY_FIELDS, Environment, ModelSummary, ModelVersion
from mlsd.registry.sql_rollouts import SqlRollouts
from mlsd.registry.sql_schema import DDL, Row, Tx, ts

__all__ = ["Row", "SqlMetadataStore", "Tx"]


class SqlMetadataStore(SqlRollouts):
    """`MetadataStore` over any DB-API connection; subclasses give transactions and locks."""

    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    for_update = ""

    def __init__(self, cache_size: int = 4096) -> None:
        self._lock = threading.RLock()
        self._envs: dict[str, Environment] = {}
        self.cache_size = cache_size
        self._parsed: OrderedDict[tuple[str, int], tuple[tuple[str, str], ModelVersion]]
        self._parsed = OrderedDict()

    @abstractmethod
    def _write(self) -> AbstractContextManager[Tx]:
        """A write transaction holding the lock that serialises writers."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Tx]:
        """A session for reads."""

    def _create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.run(statement.format(serial=self.serial))

    # -- versions -----------------------------------------------------------

    def add_version(self, draft: ModelVersion) -> ModelVersion:
        env = draft.environment
        digest = env.digest
        body = draft.model_dump_json(include=set(BODY_FIELDS))
        with self._write() as tx:
            tx.run(
                "INSERT INTO registered_models (name, created_at, last_version) VALUES (?, ?, 0)"
                " ON CONFLICT (name) DO NOTHING",
                (draft.name, ts(draft.created_at)),
            )
            rows = tx.run(
                "UPDATE registered_models SET last_version = last_version + 1 WHERE name = ?"
                " RETURNING last_version",
                (draft.name,),
            )
            version = int(rows[0][0])
            if digest not in self._envs:
                tx.run(
                    "INSERT INTO environments (hash, body) VALUES (?, ?)"
                    " ON CONFLICT (hash) DO NOTHING",
                    (digest, env.model_dump_json()),
                )
            tx.run(
                "INSERT INTO model_versions (name, version, created_at, status, env_hash, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (draft.name, version, ts(draft.created_at), draft.status, digest, body),
            )
            for key, value in draft.tags.items():
                tx.run(
                    "INSERT INTO version_tags (name, version, key, value) VALUES (?, ?, ?, ?)",
                    (draft.name, version, key, value),
                )
        self._envs[digest] = env
        return draft.model_copy(update={"version": version})

    def _build(
        self, tx: Tx, name: str, version: int, head: Row, tags: dict[str, str], body: str = ""
    ) -> ModelVersion:
        """A ModelVersion from its row head `(created_at, status, env_hash)`.

        Versions are immutable but for tags and status, so the parsed rest is cached per
        (name, version, created_at, env_hash) and the body is read only on a miss; tags
        and status always come from the current rows."""
        created_at, status, env_hash = head
        key = (name, version)
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == (created_at, env_hash):
            self._parsed.move_to_end(key)
            return cached[1].model_copy(update={"tags": tags, "status": status})
        if not body:
            body = self._bodies(tx, [key])[key]
        fields = json.loads(body)
        fields.update(
            name=name,
            version=version,
            created_at=datetime.fromisoformat(created_at),
            status=status,
            tags=tags,
            environment=self._environment(tx, env_hash),
        )
        mv = ModelVersion.model_validate(fields)
        if self.cache_size > 0:
            self._parsed[key] = ((created_at, env_hash), mv)
            if len(self._parsed) > self.cache_size:
                self._parsed.popitem(last=False)
        return mv

    def _misses(self, rows: list[Row]) -> list[tuple[str, int]]:
        """Keys of `(name, version, created_at, status, env_hash)` rows not in the cache."""
        out = []
        for name, version, created_at, _, env_hash in rows:
            cached = self._parsed.get((name, version))
            if cached is None or cached[0] != (created_at, env_hash):
                out.append((name, version))
        return out

    @staticmethod
    def _by_name(
        tx: Tx, table: str, columns: str, keys: list[tuple[str, int]]
    ) -> Iterator[tuple[str, Row]]:
        """`columns` of `table` for the given versions, in chunked `IN` queries per name."""
        by_name: dict[str, list[int]] = {}
        for name, version in keys:
            by_name.setdefault(name, []).append(version)
        for name, versions in by_name.items():
            for start in range(0, len(versions), 500):
                chunk = versions[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT {columns} FROM {table} WHERE name = ? AND version IN ({marks})"
                for row in tx.run(sql, (name, *chunk)):
                    yield name, row

    def _bodies(self, tx: Tx, keys: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        return {
            (name, r[0]): r[1]
            for name, r in self._by_name(tx, "model_versions", "version, body", keys)
        }

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self._one(
            "FROM model_versions v LEFT JOIN version_tags t"
            " ON t.name = v.name AND t.version = v.version WHERE v.name = ? AND v.version = ?",
            (name, version),
            f"model {name!r} has no version {version}",
            "version",
        )

    def get_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self._one(
            "FROM aliases a JOIN model_versions v ON v.name = a.name AND v.version = a.version"
            " LEFT JOIN version_tags t ON t.name = v.name AND t.version = v.version"
            " WHERE a.name = ? AND a.alias = ?",
            (name, alias),
            f"model {name!r} has no alias {alias!r}",
            "alias",
        )

    def _one(
        self, source: str, params: tuple[str, int | str], missing: str, field: str
    ) -> ModelVersion:
        """One version with its tags in a single round trip (one row per tag)."""
        columns = "SELECT v.name, v.version, v.created_at, v.status, v.env_hash, t.key, t.value "
        with self._read() as tx:
            rows = tx.run(columns + source, params)
            if not rows:
                raise NotFoundError(missing, field=field)
            tags = {r[5]: r[6] for r in rows if r[5] is not None}
            return self._build(tx, rows[0][0], rows[0][1], rows[0][2:5], tags)

    def latest_version(self, name: str) -> int | None:
        with self._read() as tx:
            rows = tx.run("SELECT last_version FROM registered_models WHERE name = ?", (name,))
        return int(rows[0][0]) if rows and rows[0][0] else None

    def list_models(self) -> list[ModelSummary]:
        with self._read() as tx:
            models = tx.run("SELECT name, created_at, last_version FROM registered_models")
            alias_rows = tx.run("SELECT name, alias, version FROM aliases")
        aliases: dict[str, dict[str, int]] = {}
        for name, alias, version in alias_rows:
            aliases.setdefault(name, {})[alias] = version
        return [
            ModelSummary(
                name=name,
                created_at=datetime.fromisoformat(created_at),
                latest_version=last,
                aliases=dict(sorted(aliases.get(name, {}).items())),
            )
            for name, created_at, last in sorted(models)
        ]

    def search(
        self,
        name: str | None = None,
        tag_key: str | None = None,
        tag_value: str | None = None,
        limit: int = 1000,
    ) -> list[ModelVersion]:
        if tag_value is not None and tag_key is None:
            raise ValidationError("a tag value needs a tag key", field="tag_key")
        where, params = [], []
        source = "model_versions v"
        if tag_key is not None:
            source = (
                "version_tags t JOIN model_versions v ON v.name = t.name AND v.version = t.version"
            )
            where.append("t.key = ?")
            params.append(tag_key)
            if tag_value is not None:
                where.append("t.value = ?")
                params.append(tag_value)
        if name is not None:
            where.append("v.name = ?")
            params.append(name)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        sql = f"SELECT v.name, v.version, v.created_at, v.status, v.env_hash FROM {source}"
        sql += f"{clause} ORDER BY v.name, v.version DESC LIMIT ?"
        with self._read() as tx:
            rows = tx.run(sql, (*params, int(limit)))
            keys = [(r[0], r[1]) for r in rows]
            if len(rows) < limit:  # every match returned: fetch their tags in one join
                tags = self._tags_where(tx, source, clause, params)
            else:
                tags = self._tags_of(tx, keys)
            bodies = self._bodies(tx, self._misses(rows))
            return [
                self._build(tx, n, v, r[2:], tags.get((n, v), {}), bodies.get((n, v), ""))
                for r in rows
                for n, v in [(r[0], r[1])]
            ]

    def _tags_where(
        self, tx: Tx, source: str, clause: str, params: list[str]
    ) -> dict[tuple[str, int], dict[str, str]]:
        out: dict[tuple[str, int], dict[str, str]] = {}
        for name, version, key, value in tx.run(
            f"SELECT tt.name, tt.version, tt.key, tt.value FROM {source}"
            f" JOIN version_tags tt ON tt.name = v.name AND tt.version = v.version{clause}",
            params,
        ):
            out.setdefault((name, version), {})[key] = value
        return out

    def _tags_of(
        self, tx: Tx, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[str, str]]:
        out: dict[tuple[str, int], dict[str, str]] = {}
        for name, (version, key, value) in self._by_name(
            tx, "version_tags", "version, key, value", keys
        ):
            out.setdefault((name, version), {})[key] = value
        return out

    def set_tags(
        self, name: str, version: int, tags: Mapping[str, str], remove: Sequence[str] = ()
    ) -> ModelVersion:
        with self._write() as tx:
            self._require_version(tx, name, version)
            for key in remove:
                tx.run(
                    "DELETE FROM version_tags WHERE name = ? AND version = ? AND key = ?",
                    (name, version, key),
                )
            for key, value in tags.items():
                tx.run(
                    "INSERT INTO version_tags (name, version, key, value) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
                    (name, version, key, value),
                )
        return self.get_version(name, version)

    def set_status(self, name: str, version: int, status: str) -> ModelVersion:
        if status not in ("ready", "archived"):
            raise ValidationError(f"unknown status {status!r}", field="status")
        with self._write() as tx:
            self._require_version(tx, name, version)
            tx.run(
                "UPDATE model_versions SET status = ? WHERE name = ? AND version = ?",
                (status, name, version),
            )
        return self.get_version(name, version)

    def _require_version(self, tx: Tx, name: str, version: int) -> None:
        if not tx.run(
            "SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (name, version)
        ):
            raise NotFoundError(f"model {name!r} has no version {version}", field="version")

    def _environment(self, tx: Tx, digest: str) -> Environment:
        env = self._envs.get(digest)
        if env is None:
            rows = tx.run("SELECT body FROM environments WHERE hash = ?", (digest,))
            if not rows:
                raise NotFoundError(f"no stored environment {digest}", field="environment")
            env = Environment.model_validate_json(rows[0][0])
            self._envs[digest] = env
        return env

    def environment(self, digest: str) -> Environment:
        with self._read() as tx:
            return self._environment(tx, digest)
