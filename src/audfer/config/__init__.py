"""Experiment configuration: value checks (``checks``), the option schema (``schema``), the loader and
``with_values`` (``load``), the reference renderers (``render``). Importing it loads no torch (tested); building a
``Config`` does, since ``model.name`` and ``data.sampling`` are checked against the model registry."""

from audfer.config.load import load_config, shipped_configs, with_values
from audfer.config.schema import Config

__all__ = ["Config", "load_config", "shipped_configs", "with_values"]
