"""Stage 1: the baseline classifier (vgg_init.pth) and the initial seeds from its CAMs."""
