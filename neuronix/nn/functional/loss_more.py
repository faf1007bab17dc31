"""nn.functional losses beyond loss.py: every remaining loss in torch.nn.functional."""

from __future__ import annotations
