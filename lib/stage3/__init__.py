"""Stage 3: the DeepLab-v2 segmentation network trained on the seeds (recipe 11)."""
