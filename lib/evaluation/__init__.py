"""Scores of label PNGs against ground truth (recipe 7): the metric, folders, the threshold
sweep."""
