"""MaskWatch worker: background analysis of uploaded footage."""
