# %% [markdown]
# # 6. Conditional VAE: completing the missing part of a digit
#
# Doersch sec. 4: when the input (the visible part of a digit) leaves the output ambiguous, a
# regressor trained on squared or cross-entropy error answers with one blurry average of the
# possible completions; a CVAE p(hidden | z, visible) with z ~ p(z | visible) draws distinct,
# plausible ones. pvae's completion model is Sohn et al.'s CVAE with its own baseline regressor;
# here only the bottom-left quadrant is visible. This script trains it with `pvae.train`, the
# library's trainer (a run folder, as `pvae train --model completion` writes).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from digits import classifier, digits
from ring import OUT, QUICK

from pvae import runs
from pvae.options import TrainConfig
from pvae.train import train

OUT.mkdir(parents=True, exist_ok=True)
n_train = 500 if QUICK else 20000
config = TrainConfig.for_model(
    model="completion",
    data=f"digits:{n_train}",
    visible_quadrants=1,
    epochs=1 if QUICK else 30,
    baseline_epochs=1 if QUICK else 10,
    seed=0,
)
out = OUT / "06_completion_run"
run = train(config, out, resume=(out / "checkpoint.pt").exists(), progress=not QUICK)  # a rerun goes on from it
_, model, _ = runs.load_run(run)

# %% [markdown]
# Eight test digits; the regressor's answer; four CVAE completions each. A digit classifier
# (trained on the full digits) says how often each kind of completion is a digit it is sure of,
# and whether the completion is the digit that was there.

# %%
train_x, train_y, test_x, test_y = digits(n_train)
net = classifier(train_x, train_y, 100 if QUICK else 3000)
x = torch.bernoulli(test_x[:500], generator=torch.Generator().manual_seed(0))
y = model.condition(x, None)
torch.manual_seed(0)
with torch.no_grad():
    baseline = torch.where(model.hidden, model.baseline_prediction(y), y)  # (B, D)
    samples = model.complete(y, num_samples=4)  # (4, B, D)
    for name, images in (("regressor", baseline[None]), ("CVAE samples", samples)):
        p = torch.softmax(net(images), -1)
        sure = (p.max(-1).values >= 0.9).float().mean().item()
        right = (p.argmax(-1) == test_y[:500]).float().mean().item()
        print(f"{name:13s} classifier >= 90% sure: {sure:.2f}; the digit that was there: {right:.2f}")
    spread = (samples[:, None] - samples[None]).abs().sum(-1).mean().item() * 4 / 3  # over distinct pairs
    print(f"CVAE samples differ from each other by {spread:.1f} pixels (L1) on average; the regressor gives one answer")

# %%
shown = 8
grid = torch.cat([y[:shown].clamp(min=0).unsqueeze(0), x[:shown][None], baseline[:shown][None], samples[:, :shown]])
grid = grid.reshape(-1, shown, 28, 28).permute(0, 2, 1, 3).reshape(-1, shown * 28)
fig, ax = plt.subplots(figsize=(6, 5))
ax.imshow(grid.numpy(), cmap="gray_r")
ax.set_yticks(np.arange(7) * 28 + 14, ["visible", "truth", "regressor", "CVAE 1", "CVAE 2", "CVAE 3", "CVAE 4"])
ax.set_xticks([])
ax.set_title("completing a digit from its bottom-left quadrant")
fig.tight_layout()
fig.savefig(OUT / "06_conditional_vae.png", dpi=110)
print(f"written: {OUT / '06_conditional_vae.png'}")
