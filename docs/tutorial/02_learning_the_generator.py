# %% [markdown]
# # 2. Learning the generator
#
# The same ring toy, now with alpha unknown: points come from alpha = 0.5, the model starts at
# alpha = 1.5 and learns it together with its guide, once by the ELBO and once by the IWAE bound
# (K = 10). Doersch sec. 2.2: maximising the ELBO raises log p(x) and keeps q close to the
# posterior, so the generator's parameters approach the maximum-likelihood ones where q can follow;
# IWAE's tighter bound should bring alpha at least as close.

# %%
import matplotlib.pyplot as plt
import pyro
import torch
from ring import ALPHA, OUT, QUICK, Ring

from guides import DiagGuide
from pvae.objectives import make_objective

OUT.mkdir(parents=True, exist_ok=True)
data = Ring(learn_alpha=False).sample_data(10000, seed=0)
steps = 60 if QUICK else 4000
every = max(1, steps // 40)
curves = {}
for name, particles in (("elbo", 1), ("iwae", 10)):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = Ring(alpha=1.5)
    guide = DiagGuide(latent_dim=2, data_dim=2, hidden=(64, 64))
    optim = pyro.optim.ClippedAdam({"lr": 3e-3, "lrd": 0.1 ** (1 / steps)})  # to a tenth of the rate by the end
    svi = pyro.infer.SVI(model.model, guide.guide, optim, loss=make_objective(name, particles))
    curve = []
    for step in range(steps + 1):
        if step % every == 0:
            curve.append((step, model.alpha.item()))
        if step < steps:
            svi.step(data[torch.randint(0, len(data), (256,))])
    curves[f"{name} (K = {particles})"] = curve
    late = torch.tensor([a for step, a in curve if step >= 0.75 * steps])
    print(
        f"{name:5s} K={particles:<3d} alpha after {steps} steps: {model.alpha.item():.4f};"
        f" over the last quarter {late.mean():.4f} +- {late.std():.4f} (truth {ALPHA})"
    )

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for label, curve in curves.items():
    ax.plot(*zip(*curve), label=label)
ax.axhline(ALPHA, color="k", ls="--", lw=1, label=f"truth alpha = {ALPHA}")
ax.set(xlabel="step", ylabel="alpha")
ax.set_title("learning the ring's alpha by ELBO and by IWAE")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "02_learning_the_generator.png", dpi=120)
print(f"written: {OUT / '02_learning_the_generator.png'}")
