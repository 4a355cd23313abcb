# %% [markdown]
# # 1. Why not maximum likelihood by sampling
#
# Doersch (2016, sec. 2) and the Fornax talk: log p(x) = log E_{p(z)}[p(x | z)] could be estimated
# by drawing z from the prior and averaging p(x | z), but for a sharp p(x | z) almost every draw
# misses, and the estimate is far too low unless the number of draws is enormous. A guide q(z | x)
# puts the draws where they matter: the ELBO E_q[log p(x, z) - log q(z | x)] is a biased but
# steady bound, and the IWAE bound L_k = E[log 1/k sum_i p(x, z_i) / q(z_i | x)] closes the gap
# as k grows (Burda et al. 2015). On the ring toy log p(x) is known exactly, so each estimator's
# bias and spread can be measured.

# %%
import math

import matplotlib.pyplot as plt
import pyro
import torch
from ring import OUT, QUICK, Ring, exact_log_prob

from guides import DiagGuide
from pvae.bounds import bounds_from_log_weights, log_weights
from pvae.objectives import make_objective

torch.manual_seed(0)
pyro.set_rng_seed(0)
OUT.mkdir(parents=True, exist_ok=True)
model = Ring(learn_alpha=False)  # the true generator, held fixed
x = model.sample_data(10 if QUICK else 100, seed=1)  # the points whose log p(x) we estimate
exact = exact_log_prob(x, points=301 if QUICK else 1201)
print(f"exact log p(x), mean over {len(x)} points: {exact.mean():.3f} nats")
coarse = exact_log_prob(x, points=151 if QUICK else 601)  # the integral at half the resolution
print(f"grid check (half the resolution): {(coarse - exact).abs().max():.2e} nats")

# %% [markdown]
# A guide for the fixed generator: a diagonal Gaussian q(z | x) from an MLP, fitted by the ELBO
# with plain Pyro SVI.

# %%
guide = DiagGuide(latent_dim=2, data_dim=2, hidden=(64, 64))
svi = pyro.infer.SVI(model.model, guide.guide, pyro.optim.Adam({"lr": 3e-3}), loss=make_objective("elbo", 1))
train_x = model.sample_data(10000, seed=2)
for step in range(50 if QUICK else 3000):
    svi.step(train_x[torch.randint(0, len(train_x), (256,))])

# %% [markdown]
# log w for N draws per point, from the prior (the naive estimator: log 1/N sum p(x | z_i)) and
# from the guide (L_N, and the ELBO as the mean of the single-draw terms), repeated to see the spread.

# %%
sizes = [10, 100, 1000] if QUICK else [10, 100, 1000, 10000]
repeats = 3 if QUICK else 20
rows = {"naive Monte Carlo (prior draws)": [], "IWAE bound L_N (guide draws)": [], "ELBO (mean of N guide draws)": []}
with torch.no_grad():
    for n in sizes:
        naive, iwae, elbo = [], [], []
        for r in range(repeats):
            torch.manual_seed(100 * r + n)
            z = model.prior(len(x)).sample((n,))  # (N, B, 2): draws from p(z)
            log_lik = model.log_likelihood(x, z)  # (N, B): log p(x | z_i)
            naive.append(torch.logsumexp(log_lik.double(), 0) - math.log(n))  # log 1/N sum_i p(x | z_i)
            guide_w = log_weights(model, guide, x, n, chunk=max(1, 200000 // len(x)))  # log p(x, z_i) - log q(z_i | x)
            iwae.append(bounds_from_log_weights(guide_w, [n])[n])
            elbo.append(guide_w.mean(0))
        for name, values in zip(rows, (naive, iwae, elbo)):
            err = torch.stack(values) - exact  # (repeats, B): estimate - truth
            rows[name].append((err.mean().item(), err.std(0).mean().item()))

print(f"{'estimator':34s} " + " ".join(f"{'N=' + str(n):>16s}" for n in sizes))
for name, values in rows.items():
    print(f"{name:34s} " + " ".join(f"{b:+8.3f} ({s:5.3f})" for b, s in values))
print("(bias in nats: mean of estimate - exact log p(x); in brackets the spread over repeats)")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name, values in rows.items():
    bias = [b for b, _ in values]
    spread = [s for _, s in values]
    ax.errorbar(sizes, bias, yerr=spread, marker="o", capsize=3, label=name)
ax.axhline(0, color="k", lw=0.8)
ax.set(xscale="log", xlabel="draws per point N", ylabel="estimate - exact log p(x) (nats)")
ax.set_yscale("symlog", linthresh=0.1)  # linear within 0.1 nats of the truth, logarithmic beyond
ax.set_title("ring toy: naive sampling vs ELBO vs IWAE")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "01_sampling_vs_bounds.png", dpi=120)
print(f"written: {OUT / '01_sampling_vs_bounds.png'}")
