"""Reading the lab's data: annotated scenes (Pascal VOC), face crops and crop folders."""
