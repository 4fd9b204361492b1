"""Inference: runtimes, loaded models and their host, endpoints, caches and the scoring path."""
