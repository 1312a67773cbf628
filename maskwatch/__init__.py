"""MaskWatch: face-mask compliance analytics for CCTV footage."""

__version__ = "0.1.0"
