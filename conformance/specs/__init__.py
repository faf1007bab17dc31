"""Mirror specs, one module per family; importing this package fills ``spec.REGISTRY``."""

from conformance.specs import elementwise, movement, optim  # noqa: F401
