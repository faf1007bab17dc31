"""Mirror specs, one module per family; importing this package fills ``spec.REGISTRY``."""

from conformance.specs import elementwise, linalg, movement, optim, reduce  # noqa: F401
