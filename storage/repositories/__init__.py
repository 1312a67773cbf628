"""Queries over the MaskWatch models; functions take a Session and never commit."""
