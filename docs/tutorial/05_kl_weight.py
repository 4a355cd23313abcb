# %% [markdown]
# # 5. The KL weight
#
# The ELBO is E_q[log p(x | z)] - beta KL(q(z | x) || p(z)) with beta = 1. Weighting the KL term
# (Higgins et al. 2017's beta) moves the model between two failures the lectures show: with beta
# too large every q(z | x) collapses onto the prior (KL ~ 0, no active units, each reconstruction
# the same blurry average); with beta too small the model is an autoencoder whose codes leave
# holes in the prior, so draws from p(z) decode to poor digits. Active units are Burda et al.'s:
# dimension j is active when Cov_x(E_q[z_j]) > 0.01.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from digits import classifier, digits, fit
from ring import OUT, QUICK
from torch.distributions import kl_divergence

from guides import DiagGuide
from models.gaussian_vae import GaussianVAE
from pvae.objectives import KLControl, make_objective

OUT.mkdir(parents=True, exist_ok=True)
train_x, train_y, test_x, _ = digits(500 if QUICK else 20000)
test_bin = torch.bernoulli(test_x, generator=torch.Generator().manual_seed(0))  # one fixed binarisation
betas = [0.01, 1.0, 16.0] if QUICK else [0.01, 0.1, 1.0, 4.0, 16.0, 64.0]
steps = 30 if QUICK else 5000
net = classifier(train_x, train_y, 100 if QUICK else 3000)
shown = {}
print(f"{'beta':>6s} {'KL':>7s} {'E log p(x|z)':>13s} {'active units':>13s} {'sure samples':>13s}")
for beta in betas:
    torch.manual_seed(0)
    model = GaussianVAE(784, latent_dim=16, hidden=(400,))
    guide = DiagGuide(latent_dim=16, data_dim=784, hidden=(400,))
    fit(model, guide, make_objective("meanfield", 1, kl=KLControl(weight=beta)), train_x, steps)
    with torch.no_grad():
        q = guide.posterior(test_bin)
        kl = kl_divergence(q, model.prior(len(test_bin))).mean().item()
        recon = model.likelihood(q.rsample()).log_prob(test_bin).mean().item()
        active = int((q.mean.var(0) > 0.01).sum())
        samples = model.likelihood(model.prior(64).sample()).mean
        sure = (torch.softmax(net(samples), -1).max(-1).values >= 0.9).float().mean().item()
        shown[beta] = (model.likelihood(q.mean[:8]).mean, samples[:8])
    print(f"{beta:6g} {kl:7.2f} {recon:13.1f} {active:13d} {sure:13.2f}")
print("(sure samples: the share of 64 prior draws a digit classifier is >= 90% sure of)")

# %%
fig, axes = plt.subplots(len(betas), 1, figsize=(9, 0.5 * len(betas) + 0.5))
for ax, (beta, (recon, samples)) in zip(np.atleast_1d(axes), shown.items()):
    row = torch.cat([test_bin[:8], recon, samples]).reshape(24, 28, 28).permute(1, 0, 2).reshape(28, -1)
    ax.imshow(row.numpy(), cmap="gray_r")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(f"beta {beta:g}", rotation=0, ha="right", va="center")
np.atleast_1d(axes)[0].set_title("8 test digits | their reconstructions | 8 prior samples", fontsize=9)
fig.tight_layout()
fig.savefig(OUT / "05_kl_weight.png", dpi=110)
print(f"written: {OUT / '05_kl_weight.png'}")
