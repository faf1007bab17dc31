"""``nx.backends``: torch.backends' flags (cudnn, cuda.matmul, mps, ...), one source of truth.

Neuronix runs torch's kernels, so the switches that choose those kernels are torch's: each
submodule here *is* the torch.backends submodule, and ``nx.backends.cudnn.benchmark = True``
sets ``torch.backends.cudnn.benchmark`` (and reads it back), as ``torch.backends.cuda.matmul.allow_tf32``
and ``torch.backends.mps.is_available()`` are read and written through ``nx.backends``.
"""

from __future__ import annotations

import torch.backends

__all__: list[str] = []
# every flag module the installed torch has (the set changes between torch versions)
for _name in ("cpu", "cuda", "cudnn", "cusparselt", "mha", "miopen", "mkl", "mkldnn", "mps", "nnpack", "openmp",
              "opt_einsum", "quantized"):
    if hasattr(torch.backends, _name):
        globals()[_name] = getattr(torch.backends, _name)
        __all__.append(_name)
del _name
