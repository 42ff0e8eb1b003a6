"""Plots and reports."""

from digitlab.viz import plots

__all__ = ["plots"]
