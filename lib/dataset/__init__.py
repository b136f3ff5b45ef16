"""Datasets, tag files and the synthetic VOC-format generator."""
