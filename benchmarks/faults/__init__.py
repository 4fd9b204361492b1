"""Faults survived: each backend stalled, stopped or killed under load, measured."""
