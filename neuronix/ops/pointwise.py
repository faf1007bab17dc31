"""Pointwise math beyond elementwise.py: inverse trigonometric, gamma and error-function families, torch.special.

Split by arity and namespace (each file imported here, which is what registers its ops):
``pointwise_unary`` (acos ... i1e), ``pointwise_binary`` (atan2, hypot, xlogy, fmax, ldexp, ...),
``pointwise_special`` (torch.special's own functions, logit, nan_to_num, frexp, the aliases),
``pointwise_predicates`` (torch.is_complex(x), numel, result_type, ...) and ``pointwise_windows`` (hann_window,
scalar_tensor, empty_strided: factories).
"""

from __future__ import annotations

from neuronix.ops import (  # noqa: F401  (registration)
    pointwise_binary,
    pointwise_predicates,
    pointwise_special,
    pointwise_unary,
    pointwise_windows,
)
