"""``nx.optim``: optimizers and ``lr_scheduler`` (mirrors ``torch.optim``)."""
