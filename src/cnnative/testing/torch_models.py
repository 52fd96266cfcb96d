"""The torch definitions given in cnnative.models' docstrings, built from a torch module the
caller passes in (torch is never imported here): tests and benchmarks compare against them."""

__all__ = ["resnet"]


def resnet(torch, depth=20, in_channels=1, num_classes=10, width=16):
    """``torch.nn.Sequential`` of :func:`cnnative.models.resnet` with the same arguments; its
    modules with weights come in the same order as the cnnative network's weighted layers."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                                      nn.BatchNorm2d(cout), nn.ReLU(),
                                      nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(cout))
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                           nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    layers = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
              nn.ReLU()]
    channels = width
    for stage in range(3):
        for block in range((depth - 2) // 6):
            out = width << stage
            layers.append(Block(channels, out, 2 if stage and not block else 1))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
