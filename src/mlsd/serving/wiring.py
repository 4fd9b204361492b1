"""Open the backends the service uses, each chosen by its settings URL."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from mlsd.settings import Settings

if TYPE_CHECKING:
    from mlsd.inference.assemble import FeatureSource
    from mlsd.predlog import PredictionLog
    from mlsd.serving.service import Service


def open_features(settings: Settings, read_timeout_s: float = 0.05) -> FeatureSource:
    """The feature store (SQLite online store in home, or Redis), with a short read timeout."""
    from mlsd.features.store import FeatureStore

    return FeatureStore.open(settings, read_timeout=read_timeout_s)


def open_prediction_log(settings: Settings) -> PredictionLog:
    """The prediction log (Parquet in home, or PostgreSQL)."""
    from mlsd.predlog import make_prediction_log

    return make_prediction_log(settings)


def open_jobs(settings: Settings, service: Service) -> Any | None:
    """The async job queue (in-process, or Redis), if that component is installed."""
    if importlib.util.find_spec("mlsd.serving.jobs") is None:
        return None
    jobs = importlib.import_module("mlsd.serving.jobs")
    return jobs.make_job_queue(settings)
