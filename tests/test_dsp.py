"""bisep.dsp: the STFT power spectrum with its written-out backward."""
import pytest
import torch
import torchaudio

from bisep.dsp import stft_power


@pytest.mark.parametrize("n_fft, hop", [(512, 256), (400, 160), (255, 100)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stft_power_is_torchaudios_spectrogram_with_autograds_gradient(n_fft, hop, dtype):
    """Even and odd n_fft (Nyquist bin or none), hops that do and do not divide it."""
    torch.manual_seed(0)
    reference = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop, power=2.0
                                                  ).to(dtype)
    wav = torch.randn(3, 4000, dtype=dtype)
    weights = torch.rand(reference(wav).shape, dtype=dtype)
    results = []
    for power in (reference, lambda x: stft_power(x, reference.window, n_fft, hop)):
        clip = wav.clone().requires_grad_()
        out = power(clip)
        (out * weights).sum().backward()
        results.append((out.detach(), clip.grad))
    (ref_out, ref_grad), (out, grad) = results
    assert out.shape == ref_out.shape
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    assert ((grad - ref_grad).norm() / ref_grad.norm()).item() < tolerance


def test_stft_power_passes_gradcheck():
    wav = torch.randn(2, 300, dtype=torch.float64, requires_grad=True)
    window = torch.hann_window(64, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: stft_power(x, window, 64, 24), (wav,))


def test_stft_power_refuses_a_window_of_another_length():
    with pytest.raises(ValueError, match="n_fft=512"):
        stft_power(torch.randn(1, 4000), torch.hann_window(400), 512, 128)
