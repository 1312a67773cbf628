"""Analysis pipeline: decode, detect faces, classify masks."""
