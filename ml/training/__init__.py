"""Training data preparation, training and crop-level evaluation of the mask classifier."""
