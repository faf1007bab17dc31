"""The Neuronix conformance harness: every public name checked against its torch twin.

``python -m conformance run|gate|list|repro``; see ``conformance.cli``. Importing this
package is cheap (no torch import) because pytest loads the plugin from here.
"""
