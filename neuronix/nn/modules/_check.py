"""Input checks shared by the layers: errors that name the layer, the expected and the given shapes."""

from __future__ import annotations


def check_input(layer, input, ranks: tuple[int, ...], layouts: str, channel_dims: dict[int, int] | None = None,
                channels: int | None = None) -> None:
    """Raise ``ValueError`` unless ``input.ndim`` is in ``ranks`` and its channel dim has ``channels`` entries.

    ``layouts`` describes the accepted shapes for the message, e.g. ``"(N, 3, H, W) or (3, H, W)"``;
    ``channel_dims`` maps each rank to the position of its channel dim.
    """
    shape = tuple(input.shape)
    if len(shape) not in ranks:
        raise ValueError(
            f"{layer!r}: expected a {' or '.join(f'{r}D' for r in ranks)} input of shape {layouts}, "
            f"got a {len(shape)}D input of shape {shape}"
        )
    if channels is not None and channel_dims is not None:
        dim = channel_dims[len(shape)]
        if shape[dim] != channels:
            raise ValueError(
                f"{layer!r}: expected input of shape {layouts} with {channels} channels, "
                f"got shape {shape} ({shape[dim]} channels)"
            )
