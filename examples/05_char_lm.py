"""A character-level language model: an LSTM trained on *The Zen of Python*.

The text is the one Python ships in its own ``this`` module (ROT13-encoded there), so nothing
is downloaded. The model is ``nn.Embedding -> LSTM -> nn.Linear``, where the LSTM is an
``nn.LSTMCell`` looped over time by ``fl.scan``: the cell is traced once and replayed per
character, so the tape holds one scan node instead of one node per op per time step, and
reverse mode stores one ``(h, c)`` carry per step. It is trained with ``nn.value_and_grad``
and ``optim.Adam`` on random windows of the text to predict each next character; the loss
falls from ``log(vocabulary size)`` and the script then samples text from the model, one
character at a time, carrying the LSTM state.

    python examples/05_char_lm.py              # 300 steps
    python examples/05_char_lm.py --steps 10   # a quick check
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import math

import functorch_lite as fl
from functorch_lite import nn, optim


def zen_of_python() -> str:
    """The text of ``import this``, without printing it."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embed: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, embed)
        self.cell = nn.LSTMCell(embed, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: fl.Tensor, state: tuple[fl.Tensor, fl.Tensor] | None = None) -> tuple[fl.Tensor, ...]:
        xs = fl.moveaxis(self.embed(tokens), 1, 0)  # (time, batch, embed): scan runs over axis 0
        if state is None:
            zeros = fl.zeros((tokens.shape[0], self.hidden))
            state = (zeros, zeros)

        def step(hc: tuple[fl.Tensor, fl.Tensor], x: fl.Tensor) -> tuple[tuple[fl.Tensor, fl.Tensor], fl.Tensor]:
            h, c = self.cell(x, hc)
            return (h, c), h

        state, hs = fl.scan(step, state, xs)  # hs: (time, batch, hidden)
        return self.head(fl.moveaxis(hs, 0, 1)), state  # logits: (batch, time, vocab)


def batches(key: fl.Tensor, data: fl.Tensor, batch: int, length: int) -> tuple[fl.Tensor, fl.Tensor]:
    """``batch`` random windows of ``length + 1`` characters: inputs and next-character targets."""
    starts = fl.random.randint(key, (batch, 1), 0, data.shape[0] - length - 1)
    idx = starts + fl.arange(length + 1)  # (batch, length + 1)
    windows = fl.reshape(fl.take(data, fl.reshape(idx, (-1,))), idx.shape)
    return windows[:, :-1], windows[:, 1:]


def sample(model: CharLSTM, chars: list[str], prompt: str, n: int, key: fl.Tensor, temperature: float) -> str:
    """Feed ``prompt``, then draw ``n`` characters one at a time from the model's distribution."""
    index = {c: i for i, c in enumerate(chars)}
    tokens = fl.asarray([[index[c] for c in prompt]])
    logits, state = model(tokens)
    out = []
    for k in fl.random.split(key, n):
        nxt = fl.random.categorical(k, logits[0, -1] / temperature)
        out.append(chars[int(nxt)])
        logits, state = model(fl.reshape(nxt, (1, 1)), state)
    return prompt + "".join(out)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=48, help="characters per training window")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--sample-length", type=int, default=300, help="characters to sample")
    args = parser.parse_args(argv)

    text = zen_of_python()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = fl.asarray([index[c] for c in text])
    print(f"{len(text)} characters of text, {len(chars)} distinct")

    fl.manual_seed(args.seed)
    model = CharLSTM(len(chars))
    opt = optim.Adam(lr=optim.cosine_decay(args.lr, max(args.steps, 1), alpha=0.1))

    def loss_fn(x: fl.Tensor, y: fl.Tensor) -> fl.Tensor:
        logits, _ = model(x)
        return nn.functional.cross_entropy(fl.reshape(logits, (-1, len(chars))), fl.reshape(y, (-1,)))

    step = nn.value_and_grad(model, loss_fn)
    key = fl.random.key(args.seed)
    key, k_eval = fl.random.split(key)
    x_eval, y_eval = batches(k_eval, data, 64, args.length)
    first = float(loss_fn(x_eval, y_eval))
    print(f"step    0  loss {first:.3f}  (log of the vocabulary size: {math.log(len(chars)):.3f})")
    for i in range(1, args.steps + 1):
        key, k = fl.random.split(key)
        loss, grads = step(*batches(k, data, args.batch, args.length))
        opt.update(model, grads)
        if i % max(1, args.steps // 8) == 0:
            print(f"step {i:4d}  loss {float(loss):.3f}")
    final = float(loss_fn(x_eval, y_eval))
    print(f"evaluation windows: loss {first:.3f} -> {final:.3f}")
    if not final < first:
        raise SystemExit("the loss did not fall")
    print("sample:")
    print(sample(model, chars, "Beautiful is", args.sample_length, fl.random.key(args.seed + 1), args.temperature))
    return first, final


if __name__ == "__main__":
    main()
