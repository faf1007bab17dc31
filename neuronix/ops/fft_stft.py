"""``torch.stft`` and ``torch.istft``: the short-time Fourier transform and its inverse, composed of
recorded ops (so differentiable, in the signal or spectrum and in the window, to every order).

As torch computes it: the signal is padded by ``n_fft // 2`` on both sides (``center``, with
``pad_mode``), cut into frames of ``n_fft`` samples every ``hop_length`` (an index gather), multiplied
by the window (zero-padded to ``n_fft``, centred), transformed (``rfft`` when ``onesided``, with
``norm="ortho"`` when ``normalized``: torch's ``frame_length ** -0.5``), and laid out as
``(batch, frequency, frame)``. Invalid arguments are handed to ``torch.stft`` itself, so the errors are
torch's. Not followed (NotImplementedError): complex signals or windows, and ``align_to_window=True``, where
torch 2.13 reads frames past the signal's end for some sizes (x of shape (2, 7), n_fft=2, hop_length=2,
win_length=1, center=False: "setStorage: ... out of bounds").
"""

from __future__ import annotations

import torch

from neuronix.ops import complex as cx
from neuronix.ops.public import public
from neuronix.tensor import Tensor, unwrap


def _valid(x: torch.Tensor, n_fft, hop, win, window, center, pad_mode, return_complex, align_to_window) -> bool:
    """Whether torch accepts these arguments (where it does not, its own call raises the error)."""
    if x.dim() not in (1, 2) or x.is_complex() or return_complex is None or (center and align_to_window is not None):
        return False
    if align_to_window:  # torch 2.13 frames past the signal's end for some sizes (a storage error): not followed
        return False
    length = x.shape[-1] + (2 * (n_fft // 2) if center else 0)  # align_to_window too: torch checks the signal itself
    if not (0 < n_fft <= length and hop > 0 and 0 < win <= n_fft):
        return False
    if center and pad_mode == "reflect" and n_fft // 2 >= x.shape[-1]:
        return False
    return window is None or (tuple(window.shape) == (win,) and not window.is_complex())


@public
def stft(input, n_fft, hop_length=None, win_length=None, window=None, center=True, pad_mode="reflect",
         normalized=False, onesided=None, return_complex=None, align_to_window=None):
    """``torch.stft`` of a real signal with a real window (complex signals or windows: not supported)."""
    from neuronix.nn import functional as F
    from neuronix.ops import fft as nxfft

    x, w = unwrap(input), unwrap(window)
    hop = n_fft // 4 if hop_length is None else hop_length
    win = n_fft if win_length is None else win_length
    if not _valid(x, n_fft, hop, win, w, center, pad_mode, return_complex, align_to_window):
        torch.stft(x, n_fft, hop_length, win_length, w, center, pad_mode, normalized, onesided, return_complex,
                   align_to_window)  # raises torch's error (or warns and returns, where torch accepts: use it)
        raise NotImplementedError(f"neuronix.stft: these arguments are not supported (n_fft={n_fft}, "
                                  f"hop_length={hop_length}, win_length={win_length}, align_to_window={align_to_window})")
    signal = input if x.dim() == 2 else input.unsqueeze(0)
    if center:
        half = n_fft // 2
        signal = F.pad(signal.unsqueeze(0), (half, half), mode=pad_mode).squeeze(0)
    frames = (signal.shape[-1] - n_fft) // hop + 1
    index = torch.arange(frames, device=x.device).unsqueeze(1) * hop + torch.arange(n_fft, device=x.device)
    framed = signal[:, index]  # (batch, frame, n_fft)
    if window is None and win < n_fft:  # torch's default: ones over win_length, zero-padded like any window
        window = Tensor(torch.ones(win, dtype=x.dtype, device=x.device))
    if window is not None:
        left = (n_fft - win) // 2
        if win < n_fft:
            window = F.pad(window, (left, n_fft - win - left))
        framed = framed * window
    transform = nxfft.fft if onesided is False else nxfft.rfft
    out = transform(framed, dim=-1, norm="ortho" if normalized else "backward").transpose(1, 2)
    if x.dim() == 1:
        out = out.squeeze(0)
    return out if return_complex else cx.view_as_real(out)



def _istft_valid(z: torch.Tensor, n_fft, hop, win, window, onesided, length, return_complex) -> bool:
    """Whether torch's istft accepts these arguments (where not, its own call raises the error)."""
    if not z.is_complex() or z.dim() not in (2, 3) or z.shape[-1] == 0:
        return False
    fft_size = z.shape[-2]
    onesided = fft_size != n_fft if onesided is None else onesided
    if fft_size != (n_fft // 2 + 1 if onesided else n_fft) or (return_complex and onesided):
        return False
    if not (0 < win <= n_fft and 0 < hop <= win) or (length is not None and length < 0):
        return False
    return window is None or (tuple(window.shape) == (win,) and not window.is_complex())


@public
def istft(input, n_fft, hop_length=None, win_length=None, window=None, center=True, normalized=False, onesided=None,
          length=None, return_complex=False):
    """``torch.istft``: frames by ``irfft`` (``ifft`` for ``return_complex``), windowed, overlap-added and divided
    by the overlap-added squared window, as torch computes it; differentiable in the spectrum and the window."""
    from neuronix.nn import functional as F
    from neuronix.ops import fft as nxfft
    from neuronix.ops.indexing import _GETITEM_BACKWARD
    from neuronix.ops.registry import apply

    z, w = unwrap(input), unwrap(window)
    hop = n_fft // 4 if hop_length is None else hop_length
    win = n_fft if win_length is None else win_length

    def torchs():  # torch's own call: its error, or (where neuronix does not follow) its refusal below
        torch.istft(z, n_fft, hop_length, win_length, w, center, normalized, onesided, length, return_complex)
        raise NotImplementedError(f"neuronix.istft: these arguments are not supported (n_fft={n_fft})")

    if not _istft_valid(z, n_fft, hop, win, w, onesided, length, return_complex):
        torchs()
    half = z.shape[-2] != n_fft if onesided is None else onesided  # torch's default: from the spectrum's size
    spectrum = (input if z.dim() == 3 else input.unsqueeze(0)).transpose(1, 2)  # (batch, frame, frequency)
    norm = "ortho" if normalized else "backward"
    if return_complex:
        frames = nxfft.ifft(spectrum, dim=-1, norm=norm)
    else:
        if not half:
            spectrum = spectrum[..., : n_fft // 2 + 1]
        frames = nxfft.irfft(spectrum, n=n_fft, dim=-1, norm=norm)
    if window is None:
        window = Tensor(torch.ones(win, dtype=frames.dtype.to_real(), device=z.device))
    if win < n_fft:
        left = (n_fft - win) // 2
        window = F.pad(window, (left, n_fft - win - left))
    count = frames.shape[1]
    total = n_fft + hop * (count - 1)
    index = (torch.arange(count, device=z.device).unsqueeze(1) * hop + torch.arange(n_fft, device=z.device)).reshape(-1)
    batch = frames.shape[0]
    # overlap-add: the adjoint of stft's framing signal[:, index], i.e. getitem's own backward (complex too)
    signal = apply(_GETITEM_BACKWARD, (frames * window).reshape(batch, -1), index=(slice(None), index), basic=False,
                   shape=(batch, total))
    squared = (window * window).expand(count, n_fft).reshape(-1)
    envelope = apply(_GETITEM_BACKWARD, squared, index=index, basic=False, shape=(total,))
    start = n_fft // 2 if center else 0
    end = start + length if length is not None else total - n_fft // 2 if center else total
    stop = min(end, total)
    kept = unwrap(envelope)[start:stop]
    if kept.numel() == 0 or bool(kept.abs().lt(1e-11).any()):
        torchs()  # torch's errors: the minimum of an empty envelope, "window overlap add min"
    out = signal[:, start:stop] / envelope[start:stop]
    if z.dim() == 2:
        out = out.squeeze(0)
    if end > total:  # zeros after the signal, up to length (as torch, which warns)
        out = nxfft._resize(out, (out.dim() - 1,), (end - start,), (stop - start,))
    return out
