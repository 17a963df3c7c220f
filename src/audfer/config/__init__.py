"""Experiment configuration, torch-free: value checks (``checks``), the option schema (``schema``), the loader and
``with_values`` (``load``), the reference renderers (``render``)."""

from audfer.config.load import load_config, shipped_configs, with_values
from audfer.config.schema import Config

__all__ = ["Config", "load_config", "shipped_configs", "with_values"]
