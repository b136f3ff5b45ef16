"""Networks: the VGG16 backbone and SGAN."""
