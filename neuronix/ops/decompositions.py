"""Linear algebra beyond matmul: BLAS-style fused products and torch.linalg (factorisations, solves, norms)."""

from __future__ import annotations
