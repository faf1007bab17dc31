"""A multilayer perceptron for small flat inputs (the digits demo)."""

from __future__ import annotations

from neuronix import nn


class MLP(nn.Module):
    """``Flatten`` then ``Linear``-``ReLU`` layers of the ``hidden`` sizes, then a ``Linear`` classifier."""

    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, ...] = (256, 256), dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for size in hidden:
            layers += [nn.Linear(in_features, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            in_features = size
        layers.append(nn.Linear(in_features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def mlp(in_features: int, num_classes: int, hidden: tuple[int, ...] = (256, 256), dropout: float = 0.0) -> MLP:
    """An ``MLP`` classifier."""
    return MLP(in_features, num_classes, hidden, dropout)
