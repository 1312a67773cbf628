"""Whole-pipeline accuracy evaluation on annotated scenes (Pascal VOC)."""
