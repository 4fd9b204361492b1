"""Serving benchmarks: HTTP throughput against baselines, latency at half load, model-only
throughput, the micro-batcher curve and the prediction log's cost. Run:

    .venv/bin/python -m benchmarks.serving
"""
