"""DeepLab-style VGG16 with output stride 8 (recipe 3), caffe weight layout.

Parameter names (``conv1_1.weight`` ... ``conv5_3.bias``) are those of ``vgg_init.pth``.
"""
import torch.nn as nn
import torch.nn.functional as F

# (block, number of convs, output channels); pools follow blocks 1-3 only.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n, _ in _BLOCKS for i in range(1, n + 1))


class VGG16(nn.Module):
    """conv1..conv5 with ReLU; max-pool (3, 2, 1) after conv1-3; conv5 dilation optional.

    ``width_mult`` < 1 narrows every layer (a CPU demo aid; the paper uses 1). The output
    has ``out_channels`` channels at stride 8.
    """

    def __init__(self, conv5_dilation=1, width_mult=1.0):
        super().__init__()
        in_ch = 3
        self.pool_after = set()
        for block, count, width in _BLOCKS:
            out_ch = max(8, int(round(width * width_mult)))
            dilation = conv5_dilation if block == 5 else 1
            for i in range(1, count + 1):
                conv = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
                setattr(self, f"conv{block}_{i}", conv)
                in_ch = out_ch
            if block <= 3:
                self.pool_after.add(f"conv{block}_{count}")
        self.out_channels = in_ch

    def forward(self, x):
        for name in CONV_NAMES:
            x = F.relu(getattr(self, name)(x), inplace=True)
            if name in self.pool_after:
                x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        return x
