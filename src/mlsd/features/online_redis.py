"""The online store on Redis (`MLSD_ONLINE_STORE=redis://host:port/db`).

Every key starts with the store's prefix (`{MLSD_REDIS_PREFIX}fs:` when opened from
settings), which it owns: `clear()` deletes that namespace and nothing else.

One string per (view, version, entity): a 32-character hex header (event µs, created µs)
followed by the float64 values. Writes go through a Lua script that applies the
newer-wins rule atomically; a chunk of writes and its watermark share one MULTI/EXEC.
Reads are one MGET.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlsd.backends import glob_escape
from mlsd.errors import UnavailableError
from mlsd.features.online import Lookup, Record, WriteBatch, dedupe_latest

_SCRIPT = """
for i = 1, #KEYS do
  local new = ARGV[i]
  local cur = redis.call('GET', KEYS[i])
  local take = not cur
  if cur then
    local ne = tonumber(string.sub(new, 1, 16), 16)
    local ce = tonumber(string.sub(cur, 1, 16), 16)
    if ne > ce then
      take = true
    elseif ne == ce then
      take = tonumber(string.sub(new, 17, 32), 16) > tonumber(string.sub(cur, 17, 32), 16)
    end
  end
  if take then redis.call('SET', KEYS[i], new) end
end
return #KEYS
"""
_PER_CALL = 1000


class RedisOnlineStore:
    """Latest feature rows in Redis, under a key prefix it owns."""

    def __init__(self, url: str, prefix: str = "mlsd:fs:", timeout: float = 1.0) -> None:
        import redis

        self._redis = redis
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._prefix = prefix
        self._script: Any = self._client.register_script(_SCRIPT)

    def _key(self, view: str, version: str, key: int) -> str:
        return f"{self._prefix}fv:{view}:{version}:{key}"

    def _wm_key(self, name: str) -> str:
        return f"{self._prefix}wm:{name}"

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
            raise UnavailableError(f"Redis online store unavailable: {exc}") from exc

    def write(
        self,
        batches: Sequence[WriteBatch],
        watermarks: dict[str, int] | None = None,
        sources: dict[str, str] | None = None,
    ) -> int:
        """Write rows (newer wins), watermarks and sources in one MULTI/EXEC."""
        pipe = self._client.pipeline(transaction=True)
        n = 0
        for raw in batches:
            b = dedupe_latest(raw)
            keys = [self._key(b.view, b.version, int(k)) for k in b.keys]
            vals = [
                f"{int(e):016x}{int(c):016x}".encode() + v.tobytes()
                for e, c, v in zip(b.event_us, b.created_us, b.values, strict=True)
            ]
            for i in range(0, len(keys), _PER_CALL):
                self._script(
                    keys=keys[i : i + _PER_CALL], args=vals[i : i + _PER_CALL], client=pipe
                )
            n += len(keys)
        for name, mark in (watermarks or {}).items():
            pipe.set(self._wm_key(name), str(mark))
        for name, source in (sources or {}).items():
            pipe.set(f"{self._prefix}src:{name}", source)
        self._call(pipe.execute)
        return n

    def read(self, lookups: Sequence[Lookup]) -> list[Record | None]:
        """One MGET for every lookup."""
        if not lookups:
            return []
        raw = self._call(self._client.mget, [self._key(v, ver, k) for v, ver, k in lookups])
        out: list[Record | None] = []
        for blob in raw:
            if blob is None:
                out.append(None)
                continue
            out.append(
                Record(
                    int(blob[:16], 16),
                    int(blob[16:32], 16),
                    np.frombuffer(blob, dtype=np.float64, offset=32),
                )
            )
        return out

    def watermark(self, view: str, version: str) -> int | None:
        """The materialization watermark of a view version, if any."""
        got = self._call(self._client.get, self._wm_key(f"{view}:{version}"))
        return None if got is None else int(got)

    def source(self, view: str, version: str) -> str | None:
        """The source recorded with a view version's watermark, if any."""
        got = self._call(self._client.get, f"{self._prefix}src:{view}:{version}")
        return None if got is None else bytes(got).decode()

    def clear(self) -> None:
        """Delete every key under this store's prefix (its namespace, nothing else)."""
        pattern = glob_escape(self._prefix) + "*"
        keys: list[bytes] = self._call(lambda: list(self._client.scan_iter(pattern, 1000)))
        for i in range(0, len(keys), 1000):
            self._call(self._client.delete, *keys[i : i + 1000])

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
