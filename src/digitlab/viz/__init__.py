"""Plots and reports."""

from digitlab.viz import plots, report

__all__ = ["plots", "report"]
