# %% [markdown]
# # 7. VAE and IWAE bounds on one model
#
# Burda et al. (2015): for k >= 1, L_k = E[log 1/k sum_i p(x, z_i) / q(z_i | x)] satisfies
# L_1 (the ELBO) <= L_k <= L_m <= log p(x) for k <= m, and L_k -> log p(x) as k grows. On the
# linear VAE log p(x) is exact (pPCA's marginal N(b, W W^T + s2 I)), so the gap of each bound is
# measured, not guessed. Its true posterior is Gaussian and, once the VAE has made W's columns
# orthogonal, nearly diagonal (Lucas et al. 2019), so an amortised diagonal guide leaves a small
# gap. A nonlinear VAE on binary digits has no exact log p(x), but its bounds climb further.

# %%
import matplotlib.pyplot as plt
import torch
from digits import digits, fit
from ring import OUT, QUICK

from guides import DiagGuide
from models.gaussian_vae import GaussianVAE
from models.linear_vae import LinearVAE
from pvae.bounds import estimate_bounds
from pvae.objectives import make_objective

OUT.mkdir(parents=True, exist_ok=True)
train_x, _, test_x, _ = digits(500 if QUICK else 20000)
ks = [1, 5, 50] if QUICK else [1, 5, 50, 500, 5000]
steps = 40 if QUICK else 6000
torch.manual_seed(0)
linear = LinearVAE(784, latent_dim=8)
linear.init_output_bias(train_x.mean(0))
linear_guide = DiagGuide(latent_dim=8, data_dim=784, hidden=(64,))
fit(linear, linear_guide, make_objective("meanfield", 1), train_x, steps, lr=3e-3, binarise=False)
torch.manual_seed(0)
vae = GaussianVAE(784, latent_dim=16, hidden=(400,))
vae_guide = DiagGuide(latent_dim=16, data_dim=784, hidden=(400,))
fit(vae, vae_guide, make_objective("meanfield", 1), train_x, steps)

# %%
x = test_x[: 20 if QUICK else 200]
x_binary = torch.bernoulli(test_x[: 20 if QUICK else 100], generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    exact = linear.exact_log_prob(x).double()
    curves = {
        "linear VAE (grey digits)": estimate_bounds(linear, linear_guide, x, ks=ks, seed=0),
        "Bernoulli VAE, z 16 (binary digits)": estimate_bounds(vae, vae_guide, x_binary, ks=ks, seed=0),
    }
print(f"linear VAE: exact log p(x) {exact.mean():.2f} nats per test image ({len(x)} images)")
for name, bounds in curves.items():
    means = [bounds.mean(k) for k in ks]
    print(f"{name}:")
    for k, mean in zip(ks, means):
        gap = f"   gap to log p(x) {(exact - bounds.values[k]).mean():6.3f}" if name.startswith("linear") else ""
        print(f"  L_{k:<5d} {mean:10.3f} +- {bounds.stderr(k):.3f}{gap}")
    top = exact.mean().item() if name.startswith("linear") else float("inf")
    print(f"  L_1 <= ... <= L_{ks[-1]} (<= log p(x)): {all(a <= b + 1e-6 for a, b in zip(means, means[1:] + [top]))}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, (name, bounds) in zip(axes, curves.items()):
    ax.plot(ks, [bounds.mean(k) for k in ks], marker="o", label="L_k, mean over test images")
    if name.startswith("linear"):
        ax.axhline(exact.mean().item(), color="k", ls="--", label="exact log p(x)")
    ax.set(xscale="log", xlabel="k", ylabel="nats per image", title=name)
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "07_vae_vs_iwae_bounds.png", dpi=120)
print(f"written: {OUT / '07_vae_vs_iwae_bounds.png'}")
