"""Benchmark the melody model's training step against the same step written by hand in plain PyTorch.

pvae's step is ``pvae.svi.SVI.step`` with the melody model, the diagonal guide on the BiLSTM trunk
and ``make_objective("meanfield")`` (the ELBO with KL(q || p) in closed form), as ``pvae train
--model melody`` builds them; a second pvae column adds the model's default KL controls (weight,
annealing's current value, floor). The plain step computes the same networks (the same modules'
weights, copied) and the same ELBO by hand:

    h = BiLSTM(onehot(x)),  (mu, r) = W h + b,  sigma = softplus(r) + 1e-5,  z = mu + sigma eps
    logits = decoder(z, x)  (flat, or the conductor and a bottom LSTM per bar, teacher-forced)
    loss = [CE(logits, x) + KL(N(mu, sigma^2) || N(0, I))] averaged over the batch

with the same fused Adam. Random tokens of the shapes of Essen windows (vocabulary 40); all
variants timed interleaved in this process, so only the ratios mean anything.

    python scripts/bench_melody.py [--steps 30] [--bars 2 16] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from guides import GUIDES
from models import MODELS
from pvae.objectives import KLControl, make_objective
from pvae.svi import SVI, make_optimizer

from tables import markdown, start_script

VOCAB, LR = 40, 1e-3


def pair(bars: int, decoder: str, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """The melody model and its guide as ``pvae train`` builds them (the model's default sizes)."""
    torch.manual_seed(seed)
    defaults = MODELS["melody"].train_defaults
    model = MODELS["melody"](
        steps=16 * bars, vocab=VOCAB, bars=bars, latent_dim=defaults["latent_dim"], decoder=decoder
    )
    guide = GUIDES["diag"](latent_dim=defaults["latent_dim"], vocab=VOCAB, enc_hidden=defaults["enc_hidden"])
    return model, guide


class PlainMelodyVAE(nn.Module):
    """The same encoder and decoder by hand: ``nn.LSTM`` and ``nn.Linear`` modules copied from pvae's."""

    def __init__(self, model: nn.Module, guide: nn.Module) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(guide.trunk.rnn)
        self.head = nn.Linear(guide.head.in_features, guide.head.out_features)
        self.head.load_state_dict(guide.head.state_dict())
        self.flat, self.layers, self.segments = model.decoder == "flat", model.dec_layers, model.segments
        if not self.flat:
            self.conductor_init, self.conductor = copy.deepcopy(model.conductor_init), copy.deepcopy(model.conductor)
        self.init_state, self.rnn = copy.deepcopy(model.init_state), copy.deepcopy(model.rnn)
        self.output = copy.deepcopy(model.output)

    def state(self, init: nn.Linear, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = torch.tanh(init(code)).reshape(code.shape[0], 2, self.layers, -1).permute(1, 2, 0, 3).unbind(0)
        return h.contiguous(), c.contiguous()

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape
        _, (h, _) = self.encoder(F.one_hot(x, VOCAB).float())
        loc, raw = self.head(torch.cat([h[0], h[1]], -1)).chunk(2, -1)
        scale = F.softplus(raw) + 1e-5
        z = loc + scale * torch.randn_like(loc)
        if self.flat:
            codes = z.unsqueeze(1)
        else:
            codes, _ = self.conductor(z.new_zeros(n, self.segments, 1), self.state(self.conductor_init, z))
        u = codes.shape[1]
        previous = F.one_hot(torch.cat([x.new_full((n, 1), VOCAB), x[:, :-1]], 1), VOCAB + 1)[..., :VOCAB].float()
        codes = codes.reshape(n * u, 1, -1)
        inputs = torch.cat([previous.reshape(n * u, t // u, VOCAB), codes.expand(-1, t // u, -1)], -1)
        out, _ = self.rnn(inputs, self.state(self.init_state, codes[:, 0]))
        logits = self.output(out).reshape(n, t, VOCAB)
        recon = F.cross_entropy(logits.reshape(-1, VOCAB), x.reshape(-1), reduction="sum")
        kl = (0.5 * (loc**2 + scale**2) - scale.log() - 0.5).sum()
        return (recon + kl) / n


def steppers(bars: int, decoder: str) -> dict:
    """name -> one training step on a batch of tokens, each with its own copy of the same weights."""
    out = {}
    for name, kl in (("pvae", None), ("pvae_kl", KLControl(weight=0.2, floor=0.5))):
        model, guide = pair(bars, decoder)
        optimizer = make_optimizer([*model.parameters(), *guide.parameters()], LR)
        out[name] = SVI(model, guide, make_objective("meanfield", kl=kl), optimizer).step
    plain = PlainMelodyVAE(*pair(bars, decoder))
    optimizer = torch.optim.Adam(plain.parameters(), lr=LR, fused=True)

    def plain_step(x: torch.Tensor) -> float:
        loss = plain.loss(x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    out["plain"] = plain_step
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first (default 3)")
    p.add_argument("--bars", type=int, nargs="+", default=[2, 16], help="window lengths in bars (default 2 16)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per step (default 64)")
    args = p.parse_args(argv)
    command = start_script()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; vocabulary {VOCAB}, batch {args.batch_size}")
    rows = []
    for bars in args.bars:
        for decoder in ("flat", "hierarchical"):
            steps = steppers(bars, decoder)
            x = torch.randint(0, VOCAB, (args.batch_size, 16 * bars), generator=torch.Generator().manual_seed(0))
            times = {name: [] for name in steps}
            for i in range(args.warmup + args.steps):
                for name, step in steps.items():  # interleaved: the machine's noise falls on all alike
                    start = time.perf_counter()
                    step(x)
                    if i >= args.warmup:
                        times[name].append(time.perf_counter() - start)
            ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
            rows.append(
                [
                    f"{decoder}, {bars} bars",
                    f"{ms['plain']:.1f}",
                    f"{ms['pvae']:.1f}",
                    f"{ms['pvae'] / ms['plain']:.2f}",
                    f"{ms['pvae_kl']:.1f}",
                    f"{ms['pvae_kl'] / ms['plain']:.2f}",
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    columns = ["decoder", "plain ms", "pvae ms", "ratio", "pvae + KL controls ms", "ratio"]
    print("\n".join([f"`{command}` (median of {args.steps} interleaved steps)", "", *markdown(columns, rows)]))


if __name__ == "__main__":
    main()
