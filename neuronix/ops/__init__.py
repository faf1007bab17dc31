"""All op families; importing this package fills the registry and installs Tensor methods."""

from __future__ import annotations

from neuronix.ops import (  # noqa: F401  (registration side effects)
    activation,
    conv,
    dropout_embedding,
    elementwise,
    indexing,
    linalg,
    linear,
    loss,
    movement,
    norm,
    padding,
    pool,
    reduce,
    softmax,
)
from neuronix.ops.install import install_tensor_methods

install_tensor_methods()
