"""Mirror specs, one module per family; importing this package fills ``spec.REGISTRY``."""

from conformance.specs import elementwise  # noqa: F401
