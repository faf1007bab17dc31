"""``weights=`` for ``nx.models``: torchvision's pretrained weights, loaded through its own state_dict.

``weights=None`` (the default, torchvision's keyword) keeps the random initialisation. Any
other value (a torchvision ``Weights`` enum member or its name, e.g. ``"IMAGENET1K_V1"``) is
handed to torchvision's builder of the same name, which downloads and checks the file as it
always does; neuronix then loads that model's ``state_dict`` strictly. There is no second
copy of torchvision's weight registry here: torchvision is the one place that knows the URLs.
"""

from __future__ import annotations


def torchvision_weights(model, name: str, weights, progress: bool) -> None:
    """Load torchvision's ``weights`` for the architecture ``name`` into ``model`` (nothing when ``None``)."""
    if weights is None:
        return
    try:
        import torchvision
    except Exception as err:  # the CPU-only torch build makes torchvision fail with RuntimeError, not ImportError
        raise RuntimeError(
            f"nx.models.{name}(weights={weights!r}): pretrained weights come from torchvision, which is not "
            f"importable ({type(err).__name__}: {err}); install torchvision, or pass weights=None"
        ) from None
    reference = getattr(torchvision.models, name)(weights=weights, progress=progress)
    model.load_state_dict(reference.state_dict())  # strict: a num_classes that differs fails naming the head's shape
