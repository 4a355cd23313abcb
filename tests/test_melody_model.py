"""The melody model (MusicVAE): the event-sequence distribution against a numpy loop, the batched
teacher-forced decoder against step-by-step decoding, the conductor/bottom structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.melody_vae import MelodyVAE
from pvae.distributions.events import EventSequence


def test_event_sequence_log_prob_against_numpy_loop():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 7, 5, dtype=torch.float64)  # batch (3, 2), T 7, V 5
    x = torch.randint(5, (3, 2, 7))
    d = EventSequence(logits)
    assert d.batch_shape == (3, 2) and d.event_shape == (7,)
    lg, v = logits.numpy(), x.numpy()
    expected = np.zeros((3, 2))
    for i in range(3):
        for j in range(2):
            for t in range(7):
                row = lg[i, j, t]
                expected[i, j] += row[v[i, j, t]] - np.log(np.exp(row).sum())
    np.testing.assert_allclose(d.log_prob(x).numpy(), expected, rtol=1e-12)
    # a value broadcast against particles: (2, T) scored by batch (3, 2)
    np.testing.assert_allclose(d.log_prob(x[0]).numpy()[0], expected[0], rtol=1e-12)
    assert d.expand((4, 3, 2)).log_prob(x).shape == (4, 3, 2)


def test_event_sequence_sample_temperature():
    logits = torch.tensor([[0.0, 2.0, 1.0]]).expand(6, 3)  # T 6, V 3
    d = EventSequence(logits)
    assert (d.sample(temperature=0) == 1).all()
    torch.manual_seed(0)
    draws = d.sample((4000,), temperature=1.0)
    assert draws.shape == (4000, 6)
    freq = torch.bincount(draws.flatten(), minlength=3).double() / draws.numel()
    np.testing.assert_allclose(freq.numpy(), torch.softmax(logits[0].double(), -1).numpy(), atol=0.01)
    cold = torch.bincount(d.sample((4000,), temperature=0.25).flatten(), minlength=3).double() / 24000
    np.testing.assert_allclose(cold.numpy(), torch.softmax(logits[0].double() / 0.25, -1).numpy(), atol=0.01)


def _model(decoder: str, bars: int = 4, segment_bars: int = 1, steps_per_bar: int = 16) -> MelodyVAE:
    torch.manual_seed(1)
    return MelodyVAE(
        bars * steps_per_bar,
        9,
        bars,
        latent_dim=3,
        decoder=decoder,
        dec_hidden=6,
        dec_layers=2,
        conductor_hidden=5,
        segment_bars=segment_bars,
    ).double()


@pytest.mark.parametrize("decoder,segment_bars", [("flat", 1), ("hierarchical", 1), ("hierarchical", 2)])
def test_batched_logits_equal_step_by_step_decoding(decoder, segment_bars):
    model = _model(decoder, segment_bars=segment_bars)
    z = torch.randn(5, 3, dtype=torch.float64)
    x = torch.randint(9, (5, 64))
    batched = model.logits(z, x)
    tokens, looped = model.generate(z, forced=x)
    assert torch.equal(tokens, x)
    torch.testing.assert_close(batched, looped, rtol=1e-9, atol=1e-9)
    # the site's distribution: teacher-forced log p(x | z), z with particles (K, B, Z)
    zk = torch.randn(2, 5, 3, dtype=torch.float64)
    d = model.likelihood(zk)
    assert d.batch_shape == (2, 5) and d.event_shape == (64,)
    expected = torch.stack([EventSequence(model.logits(zk[k], x)).log_prob(x) for k in range(2)])
    torch.testing.assert_close(d.log_prob(x), expected)


def test_conductor_shapes_and_bottom_state_reset():
    """The conductor gives one code per segment; the bottom decoder's state is cut at each segment,
    so a segment's logits depend on earlier segments only through the conductor and the one token
    before it, unlike the flat decoder's."""
    hier, flat = _model("hierarchical", segment_bars=2), _model("flat")
    z = torch.randn(3, 3, dtype=torch.float64)
    assert hier.segment_codes(z).shape == (3, 2, 5)  # 4 bars in segments of 2
    assert flat.segment_codes(z).shape == (3, 1, 3)
    x = torch.randint(9, (3, 64))
    changed = x.clone()
    changed[:, :31] = (x[:, :31] + 1) % 9  # all of segment 0 but its last token
    for model, same in ((hier, True), (flat, False)):
        a, b = model.logits(z, x)[:, 32:], model.logits(z, changed)[:, 32:]
        assert torch.allclose(a, b) == same
        assert not torch.allclose(model.logits(z, x)[:, :32], model.logits(z, changed)[:, :32])


def test_sampling_feeds_samples_back():
    model = _model("hierarchical")
    z = torch.randn(4, 3, dtype=torch.float64)
    tokens, logits = model.generate(z, temperature=0)
    assert torch.equal(tokens, logits.argmax(-1))
    torch.testing.assert_close(model.logits(z, tokens), logits, rtol=1e-9, atol=1e-9)
    assert model.likelihood(z).sample(temperature=0).shape == (4, 64)
    assert model.likelihood(z).sample((2,)).shape == (2, 4, 64)


def test_bad_sizes():
    with pytest.raises(ValueError, match="--bars 6 is not a multiple of --segment-bars 4"):
        MelodyVAE(96, 9, 6, decoder="hierarchical", segment_bars=4)
    with pytest.raises(ValueError, match="decoder must be"):
        MelodyVAE(32, 9, 2, decoder="tree")


def test_reconstruction_accuracy_counts_right_steps():
    from guides import DiagGuide
    from pvae.kinds.events.generate import reconstruction_accuracy

    model = _model("hierarchical")
    guide = DiagGuide(3, vocab=9, enc_hidden=4).double()
    x = torch.randint(9, (5, 64))
    accuracy = reconstruction_accuracy(model, guide, x, temperature=0, chunk=2)
    z = guide.posterior(x).mean
    _, looped = model.generate(z, forced=x)  # step-by-step teacher forcing
    right = [(i, t) for i in range(5) for t in range(64) if int(looped[i, t].argmax()) == int(x[i, t])]
    assert accuracy["teacher_forced"] == pytest.approx(len(right) / 320)
    notes = [(i, t) for i in range(5) for t in range(64) if x[i, t] >= 2]
    assert accuracy["teacher_forced_notes"] == pytest.approx(len(set(right) & set(notes)) / len(notes))
    greedy, _ = model.generate(z, temperature=0)
    assert accuracy["sampled"] == pytest.approx(float((greedy == x).double().mean()))
    assert accuracy["sampled_notes"] == pytest.approx(float((greedy == x)[x >= 2].double().mean()))
    per_window = [sum(int(looped[i, t].argmax()) == int(x[i, t]) for t in range(64)) / 64 for i in range(5)]
    assert accuracy["teacher_forced_se"] == pytest.approx(np.std(per_window, ddof=1) / np.sqrt(5))
