# %% [markdown]
# # 4. Linear autoencoders and PCA
#
# Plaut (2018): a linear autoencoder trained on squared error learns the principal subspace,
# but its weights are not the principal directions; the directions are the left singular vectors
# of the trained decoder's weights. The linear VAE (probabilistic PCA, Tipping & Bishop 1999) has
# an exact log p(x), and its maximum-likelihood value is known in closed form from the data's
# eigenvalues, so how close SVI gets can be read off. All three against numpy's PCA of the same
# grey digits.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from digits import digits, fit
from ring import OUT, QUICK

from guides import DeltaGuide, LinearGuide
from models.linear_vae import LinearVAE
from pvae.objectives import KLControl, make_objective

OUT.mkdir(parents=True, exist_ok=True)
Z = 5
train_x, _, test_x, _ = digits(500 if QUICK else 20000)
steps = 40 if QUICK else 8000

# %% [markdown]
# PCA by numpy: the eigenvectors of the training covariance, largest first.

# %%
x = train_x.double().numpy()
centred = x - x.mean(0)
eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(x))
eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
principal = eigenvectors[:, :Z]  # (D, Z)
D = x.shape[1]
noise = eigenvalues[Z:].mean()  # pPCA's maximum-likelihood s2: the mean discarded eigenvalue
best_log_lik = -0.5 * (D * math.log(2 * math.pi) + np.log(eigenvalues[:Z]).sum() + (D - Z) * math.log(noise) + D)
print(f"pPCA maximum log-likelihood (closed form, per training image): {best_log_lik:.1f} nats")

# %% [markdown]
# The linear autoencoder is pvae's linear VAE decoder with a linear delta encoder (no hidden
# layer) and the latent terms weighted 0, so only the Gaussian reconstruction term is left; the
# linear VAE is the same decoder with a linear Gaussian guide under the ELBO.

# %%
decoders = {}
guides = {
    "linear AE": lambda: DeltaGuide(latent_dim=Z, data_dim=D, hidden=()),
    "linear VAE": lambda: LinearGuide(D, latent_dim=Z),
}
losses = {
    "linear AE": make_objective("elbo", 1, kl=KLControl(weight=0.0)),
    "linear VAE": make_objective("meanfield", 1),
}
for name, make_guide in guides.items():
    torch.manual_seed(0)
    model, guide, loss = LinearVAE(D, latent_dim=Z), make_guide(), losses[name]
    model.init_output_bias(train_x.mean(0))
    fit(model, guide, loss, train_x, steps, lr=3e-3, binarise=False)
    decoders[name] = model
    if name == "linear VAE":
        with torch.no_grad():
            exact = model.exact_log_prob(train_x).mean().item()
        print(f"linear VAE exact log p(x) per training image after SVI: {exact:.1f} nats")


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The principal angles in degrees between the column spaces of ``a`` and ``b`` ``(D, Z)``."""
    qa, qb = np.linalg.qr(a)[0], np.linalg.qr(b)[0]
    return np.degrees(np.arccos(np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1, 1)))


# %% [markdown]
# Plaut's reading of the decoder W ``(D, Z)``: its left singular vectors. A second reading, which
# needs only that the subspace is right: PCA of the data projected onto that subspace, rotated
# back (the Z x Z eigenproblem of the projected covariance).

# %%
readings = {}  # (decoder, reading) -> directions (D, Z)
for name, model in decoders.items():
    weight = model.weight.detach().double().numpy()  # (D, Z)
    left = np.linalg.svd(weight, full_matrices=False)[0]  # Plaut: the decoder's left singular vectors
    _, small_vectors = np.linalg.eigh(np.cov((centred @ left).T))
    readings[name, "SVD of W"] = left
    readings[name, "SVD, then PCA in its span"] = left @ small_vectors[:, ::-1]
    print(f"{name:10s} largest principal angle to PCA's subspace: {principal_angles(weight, principal).max():.2f} deg")
cosines = {key: np.abs((v * principal).sum(0)) for key, v in readings.items()}
for (name, reading), cos in cosines.items():
    print(f"{name:10s} {reading:26s} |cos| with principal directions 1..{Z}: {cos.round(3)}")

# %%
fig, axes = plt.subplots(1 + len(readings), Z, figsize=(1.7 * Z, 1.8 * (1 + len(readings))))
rows = [("numpy PCA", principal, None)] + [(f"{n}:\n{r}", v, cosines[n, r]) for (n, r), v in readings.items()]
for r, (label, vectors, cos) in enumerate(rows):
    for j in range(Z):
        v = vectors[:, j] * np.sign(vectors[:, j] @ principal[:, j])  # the sign is arbitrary
        axes[r, j].imshow(v.reshape(28, 28), cmap="RdBu_r", vmin=-abs(v).max(), vmax=abs(v).max())
        axes[r, j].set_xticks([])
        axes[r, j].set_yticks([])
        if j == 0:
            axes[r, j].set_ylabel(label, fontsize=7)
        if cos is not None:
            axes[r, j].set_title(f"|cos| {cos[j]:.3f}", fontsize=8)
fig.suptitle("principal directions: numpy's, and read from each trained decoder", fontsize=10)
fig.tight_layout()
fig.savefig(OUT / "04_linear_autoencoders_and_pca.png", dpi=110)
print(f"written: {OUT / '04_linear_autoencoders_and_pca.png'}")
