"""``nx.models``: reference architectures with torchvision's parameter names."""
