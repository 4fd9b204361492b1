"""Online inference: HTTP API, model host, micro-batching, cache, jobs, prediction log."""
