"""The model host: several models and versions in one process, loaded from the registry.

Models are loaded by alias (`fraud@champion`) or version (`fraud/3`). A watcher
thread polls the registry's aliases; when one moves, the host loads the new
version, warms it up, then swaps one dictionary entry, so requests never see a
half-loaded model and none fails or waits during the switch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

from mlsd.errors import ConflictError, IntegrityError, MlsdError, NotFoundError, ValidationError
from mlsd.inference.runtimes import LightGBMRuntime, OnnxRuntime, Runtime
from mlsd.inference.spec import UNCHOSEN, LoadedModel, ServingSpec
from mlsd.priority import in_background
from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT
from mlsd.registry.models import ModelVersion

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    """What the host needs from the registry (`mlsd.registry.Registry` has it)."""

    def resolve(self, uri: str) -> ModelVersion:
        """The model version a `models:/name@alias` or `models:/name/3` URI points at."""
        ...

    def load_artifact(self, mv: ModelVersion, name: str) -> bytes:
        """The bytes of one artifact, sha256-checked."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and the version it points at."""
        ...


def parse_ref(ref: str) -> tuple[str, str | None, int | None]:
    """`fraud@champion` -> (fraud, champion, None); `fraud/3` -> (fraud, None, 3)."""
    text = ref.strip().removeprefix("models:/")
    if "@" in text:
        name, _, alias = text.partition("@")
        if name and alias:
            return name, alias, None
    elif "/" in text:
        name, _, number = text.partition("/")
        if name and number.isdecimal() and int(number) >= 1:
            return name, None, int(number)
    raise ValidationError(
        f"invalid model reference {ref!r}: expected NAME@ALIAS or NAME/VERSION", field="model"
    )


LEGACY_THRESHOLD = 0.5
"""The decision threshold of versions registered before training chose and stored one."""


def _threshold(mv: ModelVersion) -> float:
    """The threshold chosen at training; 0.5, with a warning, for versions stored without one."""
    if mv.threshold is not None:
        return mv.threshold.value
    log.warning(
        "%s has no stored decision threshold (registered before thresholds were): deciding at %s",
        mv.uri,
        LEGACY_THRESHOLD,
    )
    return LEGACY_THRESHOLD


def _policy(mv: ModelVersion) -> str:
    """The named policy and parameter that chose the threshold, e.g. `alert_budget k=100`."""
    return UNCHOSEN if mv.threshold is None else mv.threshold.describe()


class ModelHost:
    """Loads, warms and holds model versions; follows aliases as they move."""

    def __init__(
        self,
        registry: ModelSource,
        *,
        served_views: Callable[[], Mapping[str, str]] | None = None,
        poll_interval_s: float = 0.5,
        warmup_batches: tuple[int, ...] = (1, 8, 64),
        on_load: Callable[[LoadedModel, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self._served_views = served_views
        self.poll_interval_s = poll_interval_s
        self._warmup_batches = warmup_batches
        self._load_listeners: list[Callable[[LoadedModel, float], None]] = (
            [on_load] if on_load is not None else []
        )
        self._swap_listeners: list[Callable[[LoadedModel | None, LoadedModel], None]] = []
        self._versions: dict[tuple[str, int], LoadedModel] = {}
        self._aliases: dict[tuple[str, str], LoadedModel] = {}
        self._pinned: set[tuple[str, int]] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        #: (name, alias) -> (version served, version the alias points at, why not loaded)
        self.lagging: dict[tuple[str, str], tuple[int, int, str]] = {}

    # -- loading ------------------------------------------------------------------------------

    def _build(self, mv: ModelVersion) -> LoadedModel:
        import time

        started = time.perf_counter()
        name, version = mv.name, mv.version
        names = tuple(mv.signature.feature_names)
        views = dict(mv.lineage.feature_views)
        self._check_views(name, version, views)
        artifacts = set(mv.artifacts)
        runtime: Runtime
        if not artifacts or ONNX_ARTIFACT in artifacts:
            try:
                runtime = OnnxRuntime(self.registry.load_artifact(mv, ONNX_ARTIFACT), len(names))
            except (NotFoundError, IntegrityError) as exc:
                if LIGHTGBM_ARTIFACT not in artifacts:
                    raise
                log.warning("%s/%s: ONNX unusable (%s), using LightGBM", name, version, exc)
                runtime = self._lightgbm(mv, len(names))
        elif LIGHTGBM_ARTIFACT in artifacts:
            runtime = self._lightgbm(mv, len(names))
        else:
            raise IntegrityError(
                f"model {name}/{version} has neither {ONNX_ARTIFACT} nor {LIGHTGBM_ARTIFACT}"
            )
        spec = ServingSpec(mv.flavor, names, views, _threshold(mv), _policy(mv))
        model = LoadedModel(name, version, spec, runtime)
        self._warm(model)
        for listener in self._load_listeners:
            listener(model, time.perf_counter() - started)
        return model

    def _lightgbm(self, mv: ModelVersion, n_features: int) -> LightGBMRuntime:
        return LightGBMRuntime(self.registry.load_artifact(mv, LIGHTGBM_ARTIFACT), n_features)

    def _check_views(self, name: str, version: int, needed: Mapping[str, str]) -> None:
        if self._served_views is None or not needed:
            return
        served = self._served_views()
        wrong = {v: ver for v, ver in needed.items() if served.get(v) != ver}
        if wrong:
            view, ver = next(iter(wrong.items()))
            raise ConflictError(
                f"model {name}/{version} needs feature view {view} version {ver[:12]}, "
                f"but this server serves {str(served.get(view))[:12]}",
                field="feature_views",
            )

    def _warm(self, model: LoadedModel) -> None:
        width = len(model.feature_names)
        for rows in self._warmup_batches:
            for _ in range(3):
                scores = model.predict(np.zeros((rows, width), dtype=np.float32))
                if scores.shape != (rows,):
                    raise IntegrityError(
                        f"model {model.key} returned shape {scores.shape} for {rows} rows"
                    )

    def load(self, ref: str) -> LoadedModel:
        """Load (or reuse) the version `ref` names; follow it if `ref` is an alias."""
        name, alias, version = parse_ref(ref)
        uri = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
        mv = self.registry.resolve(uri)
        key = (str(mv.name), int(mv.version))
        model = self._versions.get(key) or self._build(mv)
        with self._lock:
            self._versions[key] = self._versions.get(key, model)
            model = self._versions[key]
            if alias is None:
                self._pinned.add(key)
            else:
                old = self._aliases.get((name, alias))
                self._aliases[(name, alias)] = model
                self._notify(old, model)
            self._collect()
        return model

    def unload(self, name: str, version: int | None = None, alias: str | None = None) -> None:
        """Stop serving an alias, or a version and every alias pointing at it."""
        with self._lock:
            if alias is not None:
                if self._aliases.pop((name, alias), None) is None:
                    raise NotFoundError(f"model {name}@{alias} is not loaded", field="model")
            elif version is not None:
                if (name, version) not in self._versions:
                    raise NotFoundError(f"model {name}/{version} is not loaded", field="model")
                self._pinned.discard((name, version))
                for key, model in list(self._aliases.items()):
                    if model.name == name and model.version == version:
                        del self._aliases[key]
                del self._versions[(name, version)]
            self._collect()

    def _collect(self) -> None:
        """Drop versions no alias points at and nobody pinned."""
        used = {(m.name, m.version) for m in self._aliases.values()} | self._pinned
        for key in [k for k in self._versions if k not in used]:
            del self._versions[key]

    # -- lookup (hot path: plain dictionary reads) -------------------------------------------

    def get(self, name: str, alias: str | None = None, version: int | None = None) -> LoadedModel:
        """The model serving `name@alias` or `name/version`."""
        model = (
            self._aliases.get((name, alias))
            if alias is not None
            else self._versions.get((name, version or 0))
        )
        if model is None:
            what = f"{name}@{alias}" if alias is not None else f"{name}/{version}"
            raise NotFoundError(f"model {what} is not loaded", field="model")
        return model

    def models(self) -> list[LoadedModel]:
        """Every loaded version, by name then version."""
        return sorted(self._versions.values(), key=lambda m: (m.name, m.version))

    def names(self) -> list[str]:
        """Names with at least one loaded version."""
        return sorted({name for name, _ in self._versions})

    def aliases_of(self, model: LoadedModel) -> list[str]:
        """Aliases that currently point at `model`."""
        return sorted(a for (n, a), m in self._aliases.items() if m is model)

    def followed(self) -> list[tuple[str, str]]:
        """The (name, alias) pairs the host follows."""
        return sorted(self._aliases)

    @property
    def ready(self) -> bool:
        """True once at least one model is loaded and warmed."""
        return bool(self._versions)

    # -- alias following ----------------------------------------------------------------------

    def on_load(self, listener: Callable[[LoadedModel, float], None]) -> None:
        """Call `listener(model, seconds)` after each version is loaded and warmed."""
        self._load_listeners.append(listener)

    def on_swap(self, listener: Callable[[LoadedModel | None, LoadedModel], None]) -> None:
        """Call `listener(old, new)` whenever an alias switches version."""
        self._swap_listeners.append(listener)

    def _notify(self, old: LoadedModel | None, new: LoadedModel) -> None:
        if old is new:
            return
        for listener in self._swap_listeners:
            listener(old, new)

    def refresh(self) -> int:
        """Poll the registry once; load, warm and switch every moved alias. Returns switches.

        An alias whose new version does not load keeps serving the old one and is listed in
        `lagging` (served version, the alias's version, why), so readiness and metrics can
        say the server is behind; the first such error is raised after every alias was tried.
        """
        switched = 0
        failure: MlsdError | None = None
        for name in {n for n, _ in self.followed()}:
            targets = self.registry.aliases(name)
            for (n, alias), current in list(self._aliases.items()):
                if n != name or alias not in targets:
                    continue
                if targets[alias] == current.version:
                    self.lagging.pop((name, alias), None)
                    continue
                try:
                    self.load(f"{name}@{alias}")
                except MlsdError as exc:
                    self.lagging[(name, alias)] = (current.version, targets[alias], exc.message)
                    failure = failure or exc
                    continue
                self.lagging.pop((name, alias), None)
                switched += 1
        if failure is not None:
            raise failure
        return switched

    def start(self) -> None:
        """Start the watcher thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=in_background(self._watch), name="mlsd-model-watcher", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()
                self.last_error = None
            except Exception as exc:
                message = exc.message if isinstance(exc, MlsdError) else repr(exc)
                if message != self.last_error:  # keep serving the old version, say why once
                    log.warning(
                        "model watcher: %s", message, exc_info=not isinstance(exc, MlsdError)
                    )
                self.last_error = message
