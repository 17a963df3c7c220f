"""Dataset adapters behind a registry, temporal sampling, clip transforms and the decoded-clip cache."""
