"""Command bodies that have grown past a few lines, one module each (cli.py dispatches)."""
