"""Experiments, each backing one shipped decision (named in its docstring's first lines)."""
