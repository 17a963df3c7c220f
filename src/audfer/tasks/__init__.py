"""What a user runs, one code path for the CLI, the demo and Python: artifacts written with their provenance, the
demo."""
