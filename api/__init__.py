"""MaskWatch HTTP API: submit footage, follow jobs, read compliance reports."""
