"""The seed's model: d2l.ai "Residual Networks (ResNet)" ResNet-18 in PyTorch, as the
chapter writes it. make_net() with its defaults is d2l's net exactly; width scales the
channels as resnet_ddp's [model] width does. Used by tools/export_pytorch.py and
bench/pytorch_resnet.py."""
from torch import nn
from torch.nn import functional as F


class Residual(nn.Module):  # d2l.ai, "Residual Networks (ResNet)", unchanged
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)

def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    return [Residual(input_channels, num_channels, use_1x1conv=True, strides=2) if i == 0 and not first_block
            else Residual(num_channels, num_channels) for i in range(num_residuals)]

def make_net(width=64, num_classes=10, stem="d2l"):
    """The seed's net; the defaults are d2l's exactly ([model] width scales the channels;
    [model] stem = nopool leaves out the stem's max-pool, which keeps every key)."""
    pool = [nn.MaxPool2d(kernel_size=3, stride=2, padding=1)] if stem == "d2l" else []
    b1 = nn.Sequential(nn.Conv2d(1, width, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(width),
                       nn.ReLU(), *pool)
    b2 = nn.Sequential(*resnet_block(width, width, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(width, 2 * width, 2))
    b4 = nn.Sequential(*resnet_block(2 * width, 4 * width, 2))
    b5 = nn.Sequential(*resnet_block(4 * width, 8 * width, 2))
    return nn.Sequential(b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(8 * width, num_classes))
