"""What tutorials 3 to 7 share: the built-in digits (28 x 28, rendered from fonts, so nothing is
downloaded), a training loop over them with plain Pyro SVI, and a small digit classifier that
scores generated images."""

from __future__ import annotations

import pyro
import torch
from pyro.infer import ELBO
from ring import QUICK
from torch import nn
from tqdm import tqdm

from pvae.contracts import Guide, Model
from pvae.kinds.image.digits import load_digits


def digits(n_train: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grey training and test images ``(N, 784)`` in [0, 1] with their labels ``(N,)``."""
    data = load_digits(n_train, seed=0)
    train, test = data.splits["train"], data.splits["test"]
    return train.images, train.labels, test.images, test.labels


def fit(
    model: Model, guide: Guide, loss: ELBO, images: torch.Tensor, steps: int, lr: float = 1e-3, binarise: bool = True
) -> list[float]:
    """``steps`` SVI steps on batches of 128 ``images`` (dynamically binarised unless ``binarise`` is
    False), Adam decaying from ``lr`` to a tenth of it; the loss per image, a value each step."""
    pyro.clear_param_store()
    optim = pyro.optim.ClippedAdam({"lr": lr, "lrd": 0.1 ** (1 / steps)})
    svi = pyro.infer.SVI(model.model, guide.guide, optim, loss=loss)
    losses = []
    quiet = True if QUICK else None  # None: a bar only on a terminal
    for _ in tqdm(range(steps), desc=type(guide).__name__, leave=False, disable=quiet):
        batch = images[torch.randint(0, len(images), (128,))]
        batch = torch.bernoulli(batch) if binarise else batch
        losses.append(svi.step(batch) / len(batch))
    return losses


def classifier(images: torch.Tensor, labels: torch.Tensor, steps: int) -> nn.Module:
    """An MLP digit classifier (784 -> 256 -> 10 logits) fitted on binarised ``images``."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        i = torch.randint(0, len(images), (128,))
        loss = nn.functional.cross_entropy(net(torch.bernoulli(images[i])), labels[i])
        optim.zero_grad()
        loss.backward()
        optim.step()
    return net.eval()
