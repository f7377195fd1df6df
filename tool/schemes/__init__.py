"""Grading-scheme maths over plain values: scales, lower-bound bands, the two-point curve, statistics."""
