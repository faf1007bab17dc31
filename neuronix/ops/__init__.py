"""All op families; importing this package fills the registry and installs Tensor methods."""

from __future__ import annotations

from neuronix.ops import (  # noqa: F401  (registration side effects)
    activation,
    activation_more,
    conv,
    decompositions,
    dropout_embedding,
    elementwise,
    fft,
    indexing,
    linalg,
    linear,
    loss,
    movement,
    norm,
    padding,
    pointwise,
    pool,
    random,
    reduce,
    shaping,
    softmax,
    sorting,
    spatial,
)
from neuronix.ops.install import install_tensor_methods

install_tensor_methods()
