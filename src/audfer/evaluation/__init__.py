"""Metrics (WAR / UAR / per-AU F1, also as torchmetrics ``Metric``s), statistics (paired differences) and reports
(tables, figures)."""
