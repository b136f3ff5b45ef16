from lib.losses.seg import seg_loss
