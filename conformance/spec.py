"""Old name of ``conformance.mirror``, kept only while files owned by other sessions import it.

Its importers: ``tests/test_{conformance_ops,optim,lr_scheduler,special_values}.py``.
Delete this file once they import ``conformance.mirror``.
"""

from conformance.mirror import REGISTRY, OpMirror  # noqa: F401
