"""All op families; importing this package fills the registry and installs Tensor methods."""

from __future__ import annotations

from neuronix.ops import elementwise, indexing, linalg, movement, reduce, softmax  # noqa: F401  (registration side effects)
from neuronix.ops import activation, conv, dropout_embedding, linear, loss, norm, padding, pool  # noqa: F401  (nn.functional)
from neuronix.ops.install import install_tensor_methods

install_tensor_methods()
