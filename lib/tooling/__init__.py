"""Around the pipeline, not in it: the synthetic VOC-format generator, the demo, the benchmark."""
