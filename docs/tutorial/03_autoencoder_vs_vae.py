# %% [markdown]
# # 3. Autoencoder and VAE latent spaces
#
# CS109B's VAE lecture and the Fornax talk: a plain autoencoder places its codes wherever
# reconstruction likes, so classes scatter with gaps between them and a grid of codes decodes to
# junk in the gaps; the VAE's KL term pulls the codes into the prior, so the code is filled and
# ordered and every point of it decodes to a digit. Same decoder (GaussianVAE, 2 -> 256 -> 512 -> 784),
# same encoder trunk; the AE is the delta guide with the latent terms weighted 0 (reconstruction
# only), the VAE the diagonal guide under the ELBO.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from digits import classifier, digits, fit
from ring import OUT, QUICK

from guides import DeltaGuide, DiagGuide
from models.gaussian_vae import GaussianVAE
from pvae.objectives import KLControl, make_objective
from pvae.posterior import point_estimate

OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
train_x, train_y, test_x, test_y = digits(500 if QUICK else 20000)
steps = 30 if QUICK else 12000
runs = {
    "autoencoder": (DeltaGuide, make_objective("elbo", 1, kl=KLControl(weight=0.0))),
    "VAE": (DiagGuide, make_objective("meanfield", 1)),
}
codes, decoders = {}, {}
for name, (guide_class, loss) in runs.items():
    torch.manual_seed(0)
    model = GaussianVAE(784, latent_dim=2, hidden=(512, 256))
    guide = guide_class(latent_dim=2, data_dim=784, hidden=(512, 256))
    losses = fit(model, guide, loss, train_x, steps)
    with torch.no_grad():
        codes[name] = point_estimate(guide.posterior(test_x)).numpy()
    decoders[name] = model
    print(f"{name:11s} final training loss {np.mean(losses[-100:]):.1f} nats per image")

# %% [markdown]
# Two numbers for the two claims. *Gaps*: draw points from a Gaussian fitted to each code (its own
# mean and covariance, so scale does not matter) and measure the distance to the nearest test code,
# in units of the code's spread; larger means emptier space between codes. *Decodes to digits*:
# decode a 15 x 15 grid spanning the codes' central 98% and ask a digit classifier how sure it is;
# and the use a VAE is for, sampling: decode draws from the prior N(0, I) and ask the same.

# %%
net = classifier(train_x, train_y, 100 if QUICK else 3000)
side = 15
for name, z in codes.items():
    mean, cov = z.mean(0), np.cov(z.T)
    white = np.linalg.inv(np.linalg.cholesky(cov))
    zw = (z - mean) @ white.T
    probe = np.random.default_rng(0).standard_normal((2000, 2))
    gap = np.sqrt(((probe[:, None] - zw[None]) ** 2).sum(-1)).min(1)
    lo, hi = np.percentile(z, [1, 99], axis=0)
    grid = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], side), np.linspace(hi[1], lo[1], side)), -1).reshape(-1, 2)
    with torch.no_grad():
        images = decoders[name].likelihood(torch.tensor(grid, dtype=torch.float32)).mean
        confidence = torch.softmax(net(images), -1).max(-1).values
        prior_draws = decoders[name].likelihood(torch.randn(500, 2, generator=torch.Generator().manual_seed(0))).mean
        p = torch.softmax(net(prior_draws), -1)
        prior_sure = (p.max(-1).values >= 0.9).float().mean()
        classes = len(set(p.argmax(-1).tolist()))
    codes[name] = (z, grid, images)
    print(
        f"{name:11s} gap (median distance, code spreads) {np.median(gap):.3f};"
        f" grid images the classifier is >= 90% sure of: {(confidence >= 0.9).float().mean():.2f};"
        f" of 500 draws z ~ N(0, I) decoded: {prior_sure:.2f} sure, {classes} classes"
    )

# %%
fig, axes = plt.subplots(2, 2, figsize=(9, 9))
for col, (name, (z, grid, images)) in enumerate(codes.items()):
    ax = axes[0, col]
    sc = ax.scatter(z[:, 0], z[:, 1], c=test_y.numpy(), cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    ax.set_title(f"{name}: test codes by digit")
    tiles = images.reshape(side, side, 28, 28).permute(0, 2, 1, 3).reshape(side * 28, side * 28)
    axes[1, col].imshow(tiles.numpy(), cmap="gray_r")
    axes[1, col].set_title(f"{name}: a grid of codes decoded")
    axes[1, col].axis("off")
fig.colorbar(sc, ax=axes[0], ticks=range(10), shrink=0.8)
fig.savefig(OUT / "03_autoencoder_vs_vae.png", dpi=110)
print(f"written: {OUT / '03_autoencoder_vs_vae.png'}")
