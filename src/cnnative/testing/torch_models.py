"""The torch definitions given in cnnative.models' docstrings, built from a torch module the
caller passes in (torch is never imported here): tests and benchmarks compare against them.

Each is an ``nn.Sequential`` whose ``state_dict()`` has exactly the keys of the cnnative
network's :meth:`~cnnative.Network.state_dict`, so weights move between the two with
``load_state_dict``.
"""

__all__ = ["nielsen", "lenet5", "resnet", "vgg", "residual_class"]


def residual_class(torch):
    """The torch counterpart of :class:`cnnative.nn.Residual`: ``body(x) + shortcut(x)``, the
    body an ``nn.Sequential`` attribute named ``body`` and the shortcut one named ``shortcut``
    (``nn.Identity`` for none), which gives the state dict keys "body.<i>..." and
    "shortcut..." cnnative uses."""
    nn = torch.nn

    class Residual(nn.Module):
        def __init__(self, *body, shortcut=None):
            super().__init__()
            self.body = nn.Sequential(*body)
            self.shortcut = nn.Identity() if shortcut is None else shortcut

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    return Residual


def nielsen(torch, dropout=0.0):
    """``torch.nn.Sequential`` of :func:`cnnative.models.nielsen` with the same arguments."""
    nn = torch.nn

    def drop():
        return [nn.Dropout(dropout)] if dropout else []

    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(20, 40, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         *drop(), nn.Linear(640, 100), nn.ReLU(),
                         *drop(), nn.Linear(100, 10))


def lenet5(torch, num_classes=10):
    """``torch.nn.Sequential`` of :func:`cnnative.models.lenet5` with the same arguments."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                         nn.Linear(84, num_classes))


def resnet(torch, depth=20, in_channels=1, num_classes=10, width=16):
    """``torch.nn.Sequential`` of :func:`cnnative.models.resnet` with the same arguments; its
    modules with weights come in the same order as the cnnative network's weighted layers."""
    nn = torch.nn
    Residual = residual_class(torch)

    def block(cin, cout, stride):
        shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                  nn.BatchNorm2d(cout))
                    if stride != 1 or cin != cout else None)
        return [Residual(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout), shortcut=shortcut),
                nn.ReLU()]

    layers = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
              nn.ReLU()]
    channels = width
    for stage in range(3):
        for index in range((depth - 2) // 6):
            out = width << stage
            layers += block(channels, out, 2 if stage and not index else 1)
            channels = out
    layers += [nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
               nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def vgg(torch, width=24, in_channels=1, num_classes=10):
    """``torch.nn.Sequential`` of :func:`cnnative.models.vgg` with the same arguments."""
    nn = torch.nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*block(in_channels, width), *block(width, width), nn.MaxPool2d(2),
                         *block(width, 2 * width), *block(2 * width, 2 * width),
                         nn.MaxPool2d(2), *block(2 * width, 4 * width),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                         nn.Linear(4 * width, num_classes))
