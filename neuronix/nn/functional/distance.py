"""nn.functional distances and normalisations: normalize, cosine_similarity, pairwise_distance, pdist,
instance/rms/local-response norm, one_hot, bilinear.
"""

from __future__ import annotations
