"""Data: dataset adapters, temporal sampling, clip transforms and the built-in synthetic set."""
