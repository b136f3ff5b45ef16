"""Scores of label PNGs against ground truth (SPEC 7): the metric, folders, the threshold sweep."""
