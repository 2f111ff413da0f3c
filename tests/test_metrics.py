"""bisep.metrics against mir_eval and against slow references written differently."""
import math

import numpy as np
import pytest
import torch

from bisep.metrics import (bss_eval_sdr, bss_eval_sources, bss_eval_with_sdr, energy_ratio_db,
                           is_silent, score_item, si_sdr, snr, summarize, summarize_rows)
from bisep.audio import resample_audio
from bisep.metrics.bss_eval import BATCH, FILTER_LENGTH, _exact_item

RATE = 16000


def harmonic_source(rng, length, rate=RATE):
    """A harmonic tone (random f0, 8 partials) plus a little noise, like a played note."""
    t = np.arange(length) / rate
    f0 = rng.uniform(80, 500)
    tone = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
               for k in range(1, 9))
    return tone + rng.uniform(0.01, 0.1) * rng.standard_normal(length)


def partial_separation(seed, n_src=2, seconds=2.0):
    """References ``(n_src, T)`` and estimates = reference + leakage of the others + noise."""
    rng = np.random.default_rng(seed)
    length = int(seconds * RATE)
    refs = np.stack([harmonic_source(rng, length) for _ in range(n_src)])
    leak = rng.uniform(0.05, 0.5, size=(n_src, 1))
    others = refs.sum(axis=0, keepdims=True) - refs
    ests = refs + leak * others + rng.uniform(0.01, 0.1) * rng.standard_normal(refs.shape)
    return refs, ests


def explicit_bss_eval(refs, ests, taps=FILTER_LENGTH):
    """BSS-Eval v3 from an explicit matrix of delayed references and ``lstsq``."""
    n_src, length = refs.shape
    padded = length + taps - 1
    delayed = np.zeros((padded, n_src * taps))
    for i in range(n_src):
        for t in range(taps):
            delayed[t:t + length, i * taps + t] = refs[i]
    out = []
    for j in range(n_src):
        est = np.concatenate([ests[j], np.zeros(taps - 1)])
        own = delayed[:, j * taps:(j + 1) * taps]
        s_filt = own @ np.linalg.lstsq(own, est, rcond=None)[0]
        p_all = delayed @ np.linalg.lstsq(delayed, est, rcond=None)[0]
        e_interf, e_artif = p_all - s_filt, est - p_all
        db = lambda a, b: 10 * np.log10(np.sum(a ** 2) / np.sum(b ** 2))  # noqa: E731
        out.append([db(s_filt, e_interf + e_artif), db(s_filt, e_interf),
                    db(s_filt + e_interf, e_artif)])
    return np.array(out).T  # (3, n_src)


# -- BSS-Eval ------------------------------------------------------------------------------

def test_fast_bss_eval_agrees_with_mir_eval_on_realistic_pairs():
    pairs = [partial_separation(seed, seconds=1.5) for seed in range(3)]
    refs = np.stack([p[0] for p in pairs])
    ests = np.stack([p[1] for p in pairs])
    fast = bss_eval_sources(refs, ests)
    ref = bss_eval_sources(refs, ests, backend="mir_eval")
    assert fast.sdr.shape == (3, 2)
    for name in ("sdr", "sir", "sar"):
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), atol=0.01)
    np.testing.assert_allclose(bss_eval_sdr(refs, ests), ref.sdr, atol=0.01)  # SDR-only path
    np.testing.assert_allclose(bss_eval_sdr(refs, ests, backend="mir_eval"), ref.sdr)
    assert 0 < fast.sdr.min() and fast.sdr.max() < 30  # a partial separation, not a trivial one


def test_fast_bss_eval_agrees_with_mir_eval_for_three_sources():
    refs, ests = partial_separation(7, n_src=3, seconds=1.0)
    fast = np.array(bss_eval_sources(refs, ests))
    ref = np.array(bss_eval_sources(refs, ests, backend="mir_eval"))
    np.testing.assert_allclose(fast, ref, atol=0.01)


def test_fast_bss_eval_agrees_with_explicit_least_squares():
    refs, ests = partial_separation(3, seconds=0.05)
    np.testing.assert_allclose(np.array(bss_eval_sources(refs, ests)),
                               explicit_bss_eval(refs, ests), atol=1e-6)


def resampled_music(rng, n_src=2, seconds=1.0):
    """Harmonic tones with 30 partials rendered at 44.1 kHz, resampled to 16 kHz (no
    energy above the resampler's cut-off) and quantized to 16 bits, as audio files are;
    the estimates are leaky separations of them."""
    t = np.arange(int(44100 * seconds)) / 44100

    def tone():
        f0 = rng.uniform(80, 400)
        return sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
                   for k in range(1, 31) if f0 * k < 20000)

    refs = resample_audio(np.stack([tone() for _ in range(n_src)]), 44100, RATE)
    refs = np.round(0.1 * refs * 32767) / 32767
    others = refs.sum(axis=0, keepdims=True) - refs
    ests = refs + rng.uniform(0.05, 0.3, size=(n_src, 1)) * others
    return refs, np.round((ests + 0.001 * rng.standard_normal(refs.shape)) * 32767) / 32767


@pytest.mark.parametrize("case", ["resampled", "half_silent", "white_noise"])
def test_fast_bss_eval_agrees_with_mir_eval_on_hard_signals(case):
    rng = np.random.default_rng(5)
    if case == "resampled":
        refs, ests = resampled_music(rng)
    elif case == "half_silent":  # one reference silent for half the clip
        refs, ests = partial_separation(6, seconds=1.0)
        refs[0, 4000:12000] = 0
        ests = refs + 0.2 * refs[::-1] + 0.01 * rng.standard_normal(refs.shape)
    else:
        refs = rng.standard_normal((2, RATE // 2))
        ests = refs + 0.3 * refs[::-1] + 0.1 * rng.standard_normal(refs.shape)
    fast = np.array(bss_eval_sources(refs, ests))
    np.testing.assert_allclose(fast, np.array(bss_eval_sources(refs, ests, backend="mir_eval")),
                               atol=0.01)
    np.testing.assert_allclose(bss_eval_sdr(refs, ests), fast[0], atol=1e-9)


def test_fast_bss_eval_scores_a_batch_as_single_items():
    pairs = [partial_separation(seed, seconds=0.1) for seed in range(BATCH + 2)]
    refs = np.stack([p[0] for p in pairs])
    ests = np.stack([p[1] for p in pairs])
    batched = np.array(bss_eval_sources(refs, ests))  # two batches of the fast backend
    single = np.stack([np.array(bss_eval_sources(r, e)) for r, e in pairs], axis=1)
    np.testing.assert_allclose(batched, single, atol=1e-9)
    np.testing.assert_allclose(bss_eval_sdr(refs, ests), batched[0], atol=1e-9)


@pytest.mark.parametrize("backend", ["fast", "mir_eval"])
def test_one_pass_with_the_mixture_matches_two_calls(backend):
    pairs = [partial_separation(seed, seconds=0.2) for seed in (30, 31)]
    refs = np.stack([p[0] for p in pairs])
    ests = np.stack([p[1] for p in pairs])
    mixes = np.broadcast_to(refs.sum(axis=1, keepdims=True), refs.shape)
    perfect = ests.copy()
    perfect[1] = refs[1]  # error terms at the rounding floor: the dense path, per item
    for estimates in (ests, perfect):
        bss, sdr_mix = bss_eval_with_sdr(refs, estimates, mixes, backend=backend)
        np.testing.assert_allclose(np.array(bss),
                                   np.array(bss_eval_sources(refs, estimates, backend)),
                                   atol=1e-9)
        np.testing.assert_allclose(sdr_mix, bss_eval_sdr(refs, mixes, backend), atol=1e-9)
    with pytest.raises(ValueError, match=r"mixtures must have the shape"):
        bss_eval_with_sdr(refs, ests, mixes[:, :1], backend=backend)
    silent = np.zeros_like(mixes)
    with pytest.raises(ValueError, match=r"mixtures\[0, 0\] is all zeros"):
        bss_eval_with_sdr(refs, ests, silent, backend=backend)


def test_items_the_recursion_cannot_solve_are_scored_densely():
    # References without energy above 4 kHz: their Gram matrices are singular to
    # rounding, where Levinson's recursion is not stable. Those items (not their
    # neighbours in the batch) get the dense solve with time-signal error terms.
    rng = np.random.default_rng(8)
    spectrum = np.fft.rfft(rng.standard_normal((2, RATE // 2)))
    spectrum[:, spectrum.shape[-1] // 2:] = 0
    band_limited = np.fft.irfft(spectrum, n=RATE // 2)
    hard = (band_limited, band_limited + 0.3 * band_limited[::-1]
            + 0.05 * rng.standard_normal(band_limited.shape))
    easy = partial_separation(9, seconds=0.5)
    refs, ests = np.stack([easy[0], hard[0]]), np.stack([easy[1], hard[1]])
    scores = np.array(bss_eval_sources(refs, ests))
    np.testing.assert_array_equal(scores[:, 1], _exact_item(*hard, sdr_only=False))
    np.testing.assert_allclose(scores[:, 0], np.array(bss_eval_sources(*easy)), atol=1e-9)
    np.testing.assert_allclose(scores[:, 0], np.array(bss_eval_sources(*easy, "mir_eval")),
                               atol=0.01)


def test_singular_systems_fall_back_like_mir_eval():
    # Identical references: the delayed references are linearly dependent (LU fails,
    # mir_eval uses lstsq). SDR and SAR stay defined; SIR is rounding noise in both.
    refs, ests = partial_separation(4, seconds=0.5)
    refs = np.stack([refs[0], refs[0]])
    fast = bss_eval_sources(refs, ests)
    ref = bss_eval_sources(refs, ests, backend="mir_eval")
    np.testing.assert_allclose(fast.sdr, ref.sdr, atol=0.01)
    np.testing.assert_allclose(fast.sar, ref.sar, atol=0.01)
    assert (fast.sir > 100).all() and (ref.sir > 100).all()


def test_sdr_is_blind_to_gain_and_to_short_filters():
    refs, ests = partial_separation(1, seconds=1.0)
    base = np.array(bss_eval_sources(refs, ests))
    np.testing.assert_allclose(np.array(bss_eval_sources(refs, 0.2 * ests)), base, atol=1e-6)
    np.testing.assert_allclose(np.array(bss_eval_sources(5 * refs, ests)), base, atol=1e-6)
    # An estimate that is its reference through a short filter (here a 2.5 ms delay and
    # an echo) is "perfect" for SDR, which allows 512-tap filtering, but not for SI-SDR.
    # The references end in silence so that cutting the filter's tail off loses nothing.
    refs[:, -100:] = 0
    fir = np.zeros(42)
    fir[40:] = [1.0, -0.5]
    filtered = np.stack([np.convolve(r, fir)[:r.size] for r in refs])
    assert (bss_eval_sources(refs, filtered).sdr > 100).all()
    assert (si_sdr(refs, filtered) < 10).all()


def test_bss_eval_accepts_torch_and_float32():
    refs, ests = partial_separation(2, seconds=0.5)
    base = bss_eval_sources(refs, ests).sdr
    from_torch = bss_eval_sources(torch.tensor(refs, dtype=torch.float32),
                                  torch.tensor(ests, dtype=torch.float32)).sdr
    assert isinstance(from_torch, np.ndarray) and from_torch.dtype == np.float64
    np.testing.assert_allclose(from_torch, base, atol=1e-3)


@pytest.mark.parametrize("backend", ["fast", "mir_eval"])
def test_bss_eval_refuses_silent_signals(backend):
    refs, ests = partial_separation(0, seconds=0.1)
    refs[1] = 0
    with pytest.raises(ValueError, match=r"references\[1\] is all zeros.*undefined"):
        bss_eval_sources(refs, ests, backend=backend)
    refs, ests = partial_separation(0, seconds=0.1)
    ests[0] = 0
    with pytest.raises(ValueError, match=r"estimates\[0\] is all zeros"):
        bss_eval_sources(refs, ests, backend=backend)


def test_bss_eval_input_errors():
    refs, ests = partial_separation(0, seconds=0.1)
    with pytest.raises(ValueError, match="the same; got"):
        bss_eval_sources(refs, ests[:, :-1])
    with pytest.raises(ValueError, match=r"\(\.\.\., n_src, time\)"):
        bss_eval_sources(refs[0], ests[0])
    with pytest.raises(ValueError, match="unknown BSS-Eval backend 'museval'"):
        bss_eval_sources(refs, ests, backend="museval")
    ests[0, 3] = np.nan
    with pytest.raises(ValueError, match="estimates holds NaN"):
        bss_eval_sources(refs, ests)


# -- SI-SDR, SNR, energy ratio -------------------------------------------------------------

def loop_si_sdr(ref, est):
    """SI-SDR by explicit sums: projection of est on ref, then the residual."""
    dot = sum(float(a) * float(b) for a, b in zip(est, ref))
    power = sum(float(b) * float(b) for b in ref)
    target = [dot / power * float(b) for b in ref]
    residual = [float(a) - t for a, t in zip(est, target)]
    return 10 * math.log10(sum(t * t for t in target) / sum(r * r for r in residual))


def test_si_sdr_matches_an_explicit_projection_loop():
    refs, ests = partial_separation(11, seconds=0.2)
    expected = [loop_si_sdr(r, e) for r, e in zip(refs, ests)]
    np.testing.assert_allclose(si_sdr(refs, ests), expected, atol=1e-9)


def test_si_sdr_is_scale_invariant_and_snr_is_not():
    refs, ests = partial_separation(12, seconds=0.5)
    np.testing.assert_allclose(si_sdr(refs, 0.1 * ests), si_sdr(refs, ests), atol=1e-9)
    np.testing.assert_allclose(si_sdr(3 * refs, ests), si_sdr(refs, ests), atol=1e-9)
    assert (snr(refs, 0.1 * ests) < snr(refs, ests) - 3).all()


def test_snr_and_energy_ratio_formulas():
    refs, ests = partial_separation(13, seconds=0.2)
    expected = [10 * math.log10(sum(r * r for r in ref) / sum((e - r) ** 2 for e, r in
                                                               zip(est, ref)))
                for ref, est in zip(refs, ests)]
    np.testing.assert_allclose(snr(refs, ests), expected, atol=1e-9)
    np.testing.assert_allclose(energy_ratio_db(refs, 0.5 * refs), 20 * math.log10(0.5),
                               atol=1e-9)
    assert energy_ratio_db(refs[0], np.zeros_like(refs[0])) == -np.inf
    assert si_sdr(refs[0], refs[0]) == np.inf  # no epsilon: a perfect estimate is +inf


def test_simple_metrics_broadcast_a_mixture_against_sources():
    refs, ests = partial_separation(14, seconds=0.2)
    mix = refs.sum(axis=0)
    np.testing.assert_allclose(si_sdr(refs, mix[None]),
                               [loop_si_sdr(r, mix) for r in refs], atol=1e-9)
    with pytest.raises(ValueError, match="differ in length: 3200 vs 3199"):
        snr(refs, mix[:-1])
    with pytest.raises(ValueError, match="do not broadcast"):
        snr(refs, np.stack([mix] * 3))


def test_simple_metrics_refuse_silent_references():
    refs, ests = partial_separation(15, seconds=0.1)
    ests[1] = 0
    with pytest.raises(ValueError, match=r"estimates\[1\] is all zeros: SI-SDR"):
        si_sdr(refs, ests)
    refs[0] = 0
    for metric in (si_sdr, snr, energy_ratio_db):
        with pytest.raises(ValueError, match=r"references\[0\] is all zeros"):
            metric(refs, ests)


# -- one item, silence rule ----------------------------------------------------------------

def test_score_item_improvements_subtract_the_mixture_scores():
    refs, ests = partial_separation(21, seconds=0.5)
    mix = refs.sum(axis=0)
    scores = score_item(refs, ests, mix)
    mix_bss = bss_eval_sources(refs, np.stack([mix, mix]))
    np.testing.assert_allclose(scores["sdr_mix"], mix_bss.sdr)
    np.testing.assert_allclose(scores["sdri"], scores["sdr"] - mix_bss.sdr)
    np.testing.assert_allclose(scores["si_sdri"],
                               scores["si_sdr"] - si_sdr(refs, np.stack([mix, mix])))
    assert (scores["sdri"] > 5).all()
    # The mixture as its own estimate improves nothing.
    same = score_item(refs, np.stack([mix, mix]), mix)
    np.testing.assert_allclose(same["sdri"], 0, atol=1e-9)
    assert set(score_item(refs, ests)) == {"sdr", "sir", "sar", "si_sdr", "snr",
                                           "energy_ratio_db"}
    with pytest.raises(ValueError, match="mixture must have shape"):
        score_item(refs, ests, np.stack([mix, mix]))


def test_is_silent_uses_the_papers_threshold():
    signal = np.zeros((3, 1000))
    signal[1, 0] = 1e-5  # sum |x| == 1e-5: skipped, as "<= 1e-5" says
    signal[2, :2] = 1e-5
    assert is_silent(signal).tolist() == [True, True, False]


# -- aggregation ---------------------------------------------------------------------------

def test_summarize_matches_numpy_and_handles_empty_and_inf():
    values = [1.0, 2.0, 4.0, 10.0]
    assert summarize(values) == {"mean": 4.25, "median": 3.0, "std": float(np.std(values)),
                                 "count": 4}
    assert summarize(x for x in [2.0]) == {"mean": 2.0, "median": 2.0, "std": 0.0,
                                           "count": 1}
    assert summarize([]) == {"mean": None, "median": None, "std": None, "count": 0}
    assert summarize([1.0, np.inf])["mean"] == np.inf


def test_summarize_rows_overall_and_by_source():
    rows = [{"item": "a", "source": "violin", "sdr": 1.0},
            {"item": "a", "source": "guitar", "sdr": 3.0},
            {"item": "b", "source": "violin", "sdr": 5.0}]
    assert summarize_rows(rows, ["sdr"])["sdr"]["mean"] == 3.0
    by_source = summarize_rows(rows, ["sdr"], group_by="source")
    assert list(by_source) == ["violin", "guitar"]
    assert by_source["violin"]["sdr"] == {"mean": 3.0, "median": 3.0, "std": 2.0, "count": 2}
