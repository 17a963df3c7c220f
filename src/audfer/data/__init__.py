"""Dataset adapters behind a registry, temporal sampling, clip transforms and the decoded-clip cache."""

from audfer.data import adapters as _adapters  # noqa: F401 - the built-in datasets register themselves
