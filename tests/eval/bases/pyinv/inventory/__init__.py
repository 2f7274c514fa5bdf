"""A tiny stock-keeping package."""
from .stock import Stock

__all__ = ["Stock"]
