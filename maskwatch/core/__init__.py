"""The small shared core every layer may import: labels, counts, per-frame records, analysis
settings. It imports nothing of MaskWatch's own outside itself."""
