"""audfer: AU-enhanced dynamic facial expression recognition (AU-DFER, ACM MM 2025)."""

from .errors import AudferError
from .vocab import AUS, AUS_INTENSITY, EXPRESSIONS

__version__ = "0.1.0"
__all__ = ["AUS", "AUS_INTENSITY", "EXPRESSIONS", "AudferError", "__version__"]
