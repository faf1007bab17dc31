"""A character-level GPT in the style of nanoGPT and minGPT, trained on a tiny built-in corpus.

Written as a torch program; only the imports differ (the data pipeline stays torch's):

    -import torch
    -import torch.nn as nn
    -from torch.nn import functional as F
    +import neuronix as torch
    +import neuronix.nn as nn
    +from neuronix.nn import functional as F

It shows: causal self-attention that takes ``F.scaled_dot_product_attention`` where the library has
it (the same check as nanoGPT, so a torch-trained state_dict loads strictly), weight tying, GPT-2's
scaled initialisation, AdamW with decay / no-decay parameter groups, linear warmup then cosine decay
of the learning rate, gradient accumulation, gradient clipping, mixed precision on CUDA (autocast and
a GradScaler for float16) and top-k sampling with a temperature.

Run: ``python examples/char_gpt.py --max-iters 200``. ``main(argv)`` returns the training loss of
every iteration (the mean over its accumulated micro-batches) and prints a sample.
"""

from __future__ import annotations

import argparse
import inspect
import math
from contextlib import nullcontext
from dataclasses import dataclass

from torch.utils.data import DataLoader, Dataset, RandomSampler

import neuronix as torch
import neuronix.nn as nn
from neuronix.nn import functional as F

CORPUS = """\
First Citizen: Before we proceed any further, hear me speak.
All: Speak, speak.
First Citizen: You are all resolved rather to die than to famish?
All: Resolved. resolved.
First Citizen: First, you know Caius Marcius is chief enemy to the people.
All: We know't, we know't.
First Citizen: Let us kill him, and we'll have corn at our own price. Is't a verdict?
All: No more talking on't; let it be done: away, away!
Second Citizen: One word, good citizens.
"""


class CharDataset(Dataset):
    """Every window of block_size + 1 characters: the first block_size are the input, the last block_size the target."""

    def __init__(self, text: str, block_size: int, stoi: dict[str, int]):
        self.block_size = block_size
        self.ids = [stoi[ch] for ch in text]

    def __len__(self) -> int:
        return len(self.ids) - self.block_size

    def __getitem__(self, index):
        chunk = torch.tensor(self.ids[index : index + self.block_size + 1], dtype=torch.long)
        return chunk[:-1], chunk[1:]


@dataclass
class GPTConfig:
    block_size: int = 64
    vocab_size: int = 65
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True  # biases in the Linears and LayerNorms, as GPT-2


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (nn.LayerNorm's bias=False arrived late in torch)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v of all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.flash = hasattr(F, "scaled_dot_product_attention")
        if not self.flash:
            # without the fused kernel: an explicit causal mask, kept as a buffer (it is in the state_dict)
            mask = torch.tril(torch.ones(config.block_size, config.block_size))
            self.register_buffer("bias", mask.view(1, 1, config.block_size, config.block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            dropout_p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=dropout_p, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            y = self.attn_dropout(F.softmax(att, dim=-1)) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying: one matrix embeds and un-embeds
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: residual projections scaled by depth
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        assert t <= self.config.block_size, f"sequence of {t} tokens, the block size is {self.config.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None  # generation needs only the last position
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        params = {name: p for name, p in self.named_parameters() if p.requires_grad}
        # matrices (Linear weights, embeddings) decay; biases and LayerNorm scales do not
        decay = [p for p in params.values() if p.dim() >= 2]
        no_decay = [p for p in params.values() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        print(f"{len(decay)} decayed tensors ({sum(p.numel() for p in decay):,} parameters), "
              f"{len(no_decay)} not decayed ({sum(p.numel() for p in no_decay):,} parameters)")
        use_fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type == "cuda"
        extra = dict(fused=True) if use_fused else dict()
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Extend idx (B, T) by max_new_tokens tokens, each drawn from the temperature-scaled top-k distribution."""
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size :]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx


def get_lr(it, args):
    """Linear warmup to --learning-rate, then cosine decay to --min-lr at --lr-decay-iters, then flat."""
    if it < args.warmup_iters:
        return args.learning_rate * (it + 1) / (args.warmup_iters + 1)
    if it > args.lr_decay_iters:
        return args.min_lr
    decay_ratio = (it - args.warmup_iters) / (args.lr_decay_iters - args.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return args.min_lr + coeff * (args.learning_rate - args.min_lr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="character-level GPT on a tiny built-in corpus")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="autocast dtype on CUDA (default: bfloat16 where supported, else float16; CPU runs float32)")
    parser.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--gradient-accumulation-steps", type=int, default=2)
    parser.add_argument("--max-iters", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=1e-4)
    parser.add_argument("--warmup-iters", type=int, default=10)
    parser.add_argument("--lr-decay-iters", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--beta2", type=float, default=0.99)
    parser.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradients' total norm to this (0: off)")
    parser.add_argument("--eval-interval", type=int, default=50)
    parser.add_argument("--eval-iters", type=int, default=4)
    parser.add_argument("--sample-tokens", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1337)
    return parser


def main(argv: list[str] | None = None) -> list[float]:
    args = build_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    device_type = "cuda" if "cuda" in args.device else "cpu"
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dtype = args.dtype or ("float32" if device_type == "cpu" else "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

    chars = sorted(set(CORPUS))
    stoi = {ch: i for i, ch in enumerate(chars)}
    split = int(0.9 * len(CORPUS))
    datasets = {"train": CharDataset(CORPUS[:split], args.block_size, stoi),
                "val": CharDataset(CORPUS[split - args.block_size :], args.block_size, stoi)}
    # batches drawn with replacement, endlessly, as minGPT's trainer draws them
    samplers = {name: RandomSampler(ds, replacement=True, num_samples=10**9) for name, ds in datasets.items()}
    loaders = {name: iter(DataLoader(ds, batch_size=args.batch_size, sampler=samplers[name])) for name, ds in datasets.items()}

    def get_batch(name):
        x, y = next(loaders[name])
        return x.to(args.device), y.to(args.device)

    config = GPTConfig(block_size=args.block_size, vocab_size=len(chars), n_layer=args.n_layer, n_head=args.n_head,
                       n_embd=args.n_embd, dropout=args.dropout)
    model = GPT(config).to(args.device)
    optimizer = model.configure_optimizers(args.weight_decay, args.learning_rate, (0.9, args.beta2), device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "float16"))
    if args.compile:
        model = torch.compile(model)

    @torch.no_grad()
    def estimate_loss():
        model.eval()
        out = {}
        for name in ("train", "val"):
            losses = torch.zeros(args.eval_iters)
            for k in range(args.eval_iters):
                with ctx:
                    _, loss = model(*get_batch(name))
                losses[k] = loss.item()
            out[name] = losses.mean().item()
        model.train()
        return out

    losses: list[float] = []
    X, Y = get_batch("train")
    for it in range(args.max_iters):
        lr = get_lr(it, args)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        if it > 0 and it % args.eval_interval == 0:
            estimate = estimate_loss()
            print(f"iter {it}: train loss {estimate['train']:.4f}, val loss {estimate['val']:.4f}")

        step_loss = 0.0
        for _ in range(args.gradient_accumulation_steps):
            with ctx:
                _, loss = model(X, Y)
                loss = loss / args.gradient_accumulation_steps  # the accumulated gradient is the mean's
            X, Y = get_batch("train")  # fetch the next batch while the device works on this one
            scaler.scale(loss).backward()
            step_loss += loss.item()
        if args.grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        print(f"iter {it}: loss {step_loss:.4f}, lr {lr:.2e}")

    model.eval()
    start = torch.tensor([[stoi["F"]]], dtype=torch.long, device=args.device)
    with ctx:
        sample = model.generate(start, args.sample_tokens, temperature=args.temperature, top_k=args.top_k)
    print("sample: " + "".join(chars[i] for i in sample[0].tolist()).replace("\n", "\\n"))
    return losses


if __name__ == "__main__":
    main()
