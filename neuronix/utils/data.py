"""``nx.utils.data``: torch's data pipeline (``DataLoader``, datasets, samplers), batching neuronix tensors.

Data loading is not differentiable and torch's loader is the one users know, so every public name of
``torch.utils.data`` is torch's own object here. What makes it Neuronix's: the interop module
registers ``nx.Tensor`` with torch's ``default_collate``, so a ``TensorDataset`` of ``nx.Tensor``s (or
any dataset returning them) is batched by a ``DataLoader`` into ``nx.Tensor`` batches — in the main
process and in worker processes alike (``num_workers > 0``: the batch travels back in shared memory).
Samples that are torch tensors stay torch tensors, as under torch.
"""

from __future__ import annotations

import torch.utils.data as _torch_data

import neuronix.interop  # noqa: F401  (registers nx.Tensor with default_collate)

# the installed torch's public names (the list changes between versions)
__all__ = [name for name in _torch_data.__all__ if not name.startswith("_")]
globals().update({name: getattr(_torch_data, name) for name in __all__})
