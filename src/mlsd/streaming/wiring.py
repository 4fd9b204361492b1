"""Open a stream processor from settings: event log, features, registry, model, log.

The same components `mlsd serve` uses, assembled without the HTTP layer (streaming and
serving are siblings: neither imports the other): the model host loads `model` from the
registry and follows its alias, the pipeline reads the online store the settings name,
and the prediction log is the one `MLSD_PREDICTION_LOG` names, written without its journal
(the processor's commit waits for its records to be stored instead).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from mlsd.features.store import FeatureStore
from mlsd.inference.assemble import FeatureAssembler
from mlsd.inference.endpoint import HostedEndpoint
from mlsd.inference.host import ModelHost, parse_ref
from mlsd.inference.metrics import MetricsObserver, ServingMetrics
from mlsd.inference.pipeline import ScoringPipeline, default_variant
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.settings import Settings
from mlsd.streaming import open_event_log
from mlsd.streaming.metrics import StreamMetrics
from mlsd.streaming.processor import StreamConfig, StreamProcessor
from mlsd.streaming.window_features import WindowFeatures


def open_processor(
    settings: Settings,
    config: StreamConfig,
    model_ref: str = "fraud@champion",
    *,
    follow_alias: bool = True,
    features: FeatureStore | None = None,
    window_features: bool = True,
) -> tuple[StreamProcessor, Callable[[], None]]:
    """A processor on the backends `settings` names, and the function that closes it all
    (leaves the group, stops the alias watcher, flushes the prediction log). Its metrics
    and the scoring pipeline's share one Prometheus registry, `processor.metrics.registry`.
    `features`, when given, is the feature store it reads (the caller closes it).
    `window_features`: keep the served model's window views as per-key state, rebuilt
    here from the history and the topic's decided events (`mlsd.streaming.window_features`)."""
    name, alias, version = parse_ref(model_ref)
    with ExitStack() as stack:
        events = open_event_log(settings)
        stack.callback(events.close)
        if features is None:
            features = FeatureStore.open(settings, read_timeout=1.0)
            stack.callback(features.close)
        registry = Registry.open(settings)
        stack.callback(registry.close)
        host = ModelHost(registry, served_views=features.view_versions)
        host.load(model_ref)
        if follow_alias and alias is not None:
            host.start()
            stack.callback(host.stop)
        # no journal: the processor commits a batch only once its records are stored
        # (`wait_durable`), so what a kill loses from the buffer is delivered and logged
        # again; a journal would only double it (and cost ~2-4 µs an event)
        predictions = make_prediction_log(
            settings.model_copy(update={"prediction_log_journal": False})
        )
        stack.callback(predictions.close)
        metrics = ServingMetrics()
        endpoint = HostedEndpoint(host, name, alias, version=version, metrics=metrics)
        state: WindowFeatures | None = None
        if window_features:
            state = WindowFeatures(features, endpoint.current().feature_names)
            if state.enabled:
                state.rebuild(events, config.input_topic, predictions)
            else:
                state = None
        provided = (state,) if state is not None else ()
        pipeline = ScoringPipeline(FeatureAssembler(features, metrics, provided=provided), metrics)
        pipeline.add_endpoint(name, default_variant(endpoint, alias, version))
        pipeline.add_observer(MetricsObserver(metrics))
        processor = StreamProcessor(
            events, pipeline, predictions, config, StreamMetrics(metrics.registry), state
        )
        stack.callback(processor.close)
        closer = stack.pop_all()
    return processor, closer.close
