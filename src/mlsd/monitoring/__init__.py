"""Monitoring: drift of the prediction log against each version's reference profile,
streaming detectors' alarms, alert rules and the Prometheus gauges serving exports."""
