"""A Transformer word-level language model, in the style of the PyTorch word_language_model example.

Written as a torch program; only the imports differ:

    -import torch
    -import torch.nn as nn
    -import torch.nn.functional as F
    +import neuronix as torch
    +import neuronix.nn as nn
    +import neuronix.nn.functional as F

The corpus is a tiny built-in text (no download), tokenised into words with an ``<eos>`` after each
line and cut into train / valid / test parts as the example's ``data.Corpus`` cuts its three files.
Training is truncated backpropagation over --bptt tokens with a causal mask, gradient clipping and a
plain SGD update written by hand; the learning rate is divided by 4 whenever the validation loss
stops improving.

Run: ``python examples/word_language_model_transformer.py --epochs 4``. ``main(argv)`` returns the
training loss of every step.
"""

from __future__ import annotations

import argparse
import math

import neuronix as torch
import neuronix.nn as nn
import neuronix.nn.functional as F

TEXT = """\
the cat sat on the mat and the dog sat on the log
a bird sang in the tree while the cat watched the bird
the dog ran to the park and the cat stayed on the mat
in the morning the bird flew over the park and the tree
the old dog slept by the door while the young cat played
a small bird ate the seeds that fell from the old tree
the cat and the dog looked at the bird in the tree
when the rain came the dog ran home and the cat hid
the bird sang again when the sun came over the park
the young dog chased the old cat around the small tree
the cat sat by the door and the dog sat on the mat
a bird flew home when the rain came over the park
"""


class Dictionary:
    def __init__(self):
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)


class Corpus:
    """Lines 1..n-4 train, n-4..n-2 validate, the last two test; each a 1-d tensor of word ids."""

    def __init__(self, text: str):
        self.dictionary = Dictionary()
        lines = text.splitlines()
        self.train = self.tokenize(lines[:-4])
        self.valid = self.tokenize(lines[-4:-2])
        self.test = self.tokenize(lines[-2:])

    def tokenize(self, lines: list[str]):
        ids = [self.dictionary.add_word(word) for line in lines for word in line.split() + ["<eos>"]]
        return torch.tensor(ids).type(torch.int64)


def batchify(data, bsz, device):
    """Cut the token stream into bsz columns (dropping the remainder): shape (tokens // bsz, bsz)."""
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous().to(device)


def get_batch(source, i, bptt):
    """Rows i .. i + bptt of the columns as input, the same shifted by one token as the flat target."""
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i : i + seq_len]
    target = source[i + 1 : i + 1 + seq_len].view(-1)
    return data, target


class PositionalEncoding(nn.Module):
    """Adds the sinusoids of Vaswani et al. (2017) to (sequence, batch, d_model) inputs, then dropout."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        return self.dropout(x + self.pe[: x.size(0), :])


class TransformerModel(nn.Module):
    """Embedding, positional encoding, a causal TransformerEncoder and a decoder to log-probabilities."""

    def __init__(self, ntoken: int, ninp: int, nhead: int, nhid: int, nlayers: int, dropout: float = 0.5):
        super().__init__()
        self.src_mask = None
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout)
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.ninp = ninp
        self.decoder = nn.Linear(ninp, ntoken)
        self.init_weights()

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, src, has_mask=True):
        if has_mask:
            if self.src_mask is None or self.src_mask.size(0) != len(src):
                self.src_mask = nn.Transformer.generate_square_subsequent_mask(len(src)).to(src.device)
        else:
            self.src_mask = None
        src = self.pos_encoder(self.encoder(src) * math.sqrt(self.ninp))
        output = self.decoder(self.transformer_encoder(src, self.src_mask))
        return F.log_softmax(output, dim=-1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Transformer word language model on a tiny built-in corpus")
    parser.add_argument("--emsize", type=int, default=64, help="size of the word embeddings")
    parser.add_argument("--nhid", type=int, default=128, help="width of the feed-forward layers")
    parser.add_argument("--nlayers", type=int, default=2)
    parser.add_argument("--nhead", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5.0, help="initial learning rate")
    parser.add_argument("--clip", type=float, default=0.25, help="gradient clipping")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--eval-batch-size", type=int, default=2)
    parser.add_argument("--bptt", type=int, default=16, help="sequence length")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many training steps")
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--no-cuda", action="store_true", help="train on the CPU even if CUDA is available")
    parser.add_argument("--log-interval", type=int, default=4)
    parser.add_argument("--save", default=None, help="write the best model's state_dict to this file")
    return parser


def main(argv: list[str] | None = None) -> list[float]:
    args = build_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if not args.no_cuda and torch.cuda.is_available() else "cpu")

    corpus = Corpus(TEXT)
    train_data = batchify(corpus.train, args.batch_size, device)
    val_data = batchify(corpus.valid, args.eval_batch_size, device)
    test_data = batchify(corpus.test, args.eval_batch_size, device)
    ntokens = len(corpus.dictionary)
    model = TransformerModel(ntokens, args.emsize, args.nhead, args.nhid, args.nlayers, args.dropout).to(device)
    criterion = nn.NLLLoss()

    def evaluate(data_source):
        model.eval()
        total_loss = 0.0
        with torch.no_grad():
            for i in range(0, data_source.size(0) - 1, args.bptt):
                data, targets = get_batch(data_source, i, args.bptt)
                output = model(data).view(-1, ntokens)
                total_loss += len(data) * criterion(output, targets).item()
        return total_loss / (len(data_source) - 1)

    losses: list[float] = []
    lr, best_val_loss = args.lr, None
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
            data, targets = get_batch(train_data, i, args.bptt)
            model.zero_grad()
            output = model(data).view(-1, ntokens)
            loss = criterion(output, targets)
            loss.backward()
            # clipping keeps the exploding gradients of long sequences in check
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            losses.append(loss.item())
            if batch % args.log_interval == 0:
                print(f"epoch {epoch} batch {batch}: lr {lr:.2f}, loss {loss.item():.2f}, ppl {math.exp(loss.item()):.2f}")
            if args.max_steps is not None and len(losses) >= args.max_steps:
                return losses

        val_loss = evaluate(val_data)
        print(f"end of epoch {epoch}: valid loss {val_loss:.2f}, valid ppl {math.exp(val_loss):.2f}")
        if best_val_loss is None or val_loss < best_val_loss:
            best_val_loss = val_loss
            if args.save:
                torch.save(model.state_dict(), args.save)
        else:
            lr /= 4.0  # anneal when the validation loss stops improving
    test_loss = evaluate(test_data)
    print(f"end of training: test loss {test_loss:.2f}, test ppl {math.exp(test_loss):.2f}")
    return losses


if __name__ == "__main__":
    main()
