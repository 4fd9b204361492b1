"""Transaction simulator, scenario injection and the live stream."""
