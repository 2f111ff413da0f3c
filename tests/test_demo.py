"""`bisep demo`: the library pieces on their own, then the page served by a real
`python -m bisep demo` subprocess and driven in headless Chromium (Debian's chromium and
chromium-driver, through selenium; nothing downloads a browser)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from bisep.demo.examples import ExamplesError, folder_examples, manifest_examples
from bisep.demo.facts import model_facts
from bisep.demo.uploads import UploadError, build_queries, read_upload, split_queries
from conftest import REPO
from export_fakes import experiment

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Debian's chromium as root in a container: no sandbox, no GPU, and no background
# traffic (component updates, sync, QUIC probes); a fresh profile per run.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1700",
                  # Every host name but the server's fails to resolve: the page must work
                  # with no network.
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
MAX_SECONDS = 20
WAIT = 240  # seconds; the machine running the suite may be loaded


def tones(seconds: float, rate: int, freqs=(220.0, 330.0), channels: int = 1) -> np.ndarray:
    """Harmonic tones with a slow tremolo, ``(time, channels)`` as soundfile writes."""
    t = np.arange(int(seconds * rate)) / rate
    wav = sum(0.1 * np.sin(2 * np.pi * f * k * t) / k for f in freqs for k in (1, 2, 3))
    wav = wav * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    return np.stack([wav * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained run as the recipe leaves it: ``model.pth``, ``scores/summary.json``,
    and ``separated/separation.json`` naming a test manifest of two compositions."""
    root = tmp_path_factory.mktemp("demo")
    exp = experiment(root)
    data = root / "data"
    items = []
    for i, labels in enumerate([("flute", "violin"), ("violin", "cello")]):
        (data / "wav").mkdir(parents=True, exist_ok=True)
        sf.write(data / "wav" / f"test_{i}.wav", tones(2.0, 16000, (262.0 + 50 * i,)), 16000)
        items.append({"id": f"test_{i}", "audio": f"wav/test_{i}.wav", "labels": list(labels),
                      "duration": 2.0})
    (data / "test.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    (exp / "separated").mkdir()
    (exp / "separated" / "separation.json").write_text(
        json.dumps({"manifest": str(data / "test.jsonl")}))
    return exp


# -- the library --------------------------------------------------------------------------
def test_uploads_are_checked_before_any_work(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    empty = tmp_path / "empty.wav"
    empty.touch()
    long = tmp_path / "long.flac"
    sf.write(long, tones(3.0, 8000), 8000)
    for path, tokens in [(None, ("no mixture",)), (text, ("notes.wav", "not an audio file")),
                         (empty, ("empty.wav", "empty")),
                         (long, ("long.flac", "3.0 s", "--max-seconds"))]:
        with pytest.raises(UploadError) as info:
            read_upload(path, max_seconds=2)
        assert all(token in str(info.value) for token in tokens), str(info.value)
    wav, rate = read_upload(long, max_seconds=None)
    assert rate == 8000 and wav.shape == (1, 24000)


def test_queries_from_the_fields():
    assert split_queries(" violin, the sound of a flute ;violin\n") == [
        "violin", "the sound of a flute"]
    queries, names = build_queries("violin, flute", negative="piano", negative_weight=0.3,
                                   example=(np.zeros((1, 800), np.float32), 16000))
    assert names == ["violin", "flute", "audio example"]
    assert [q.negative for q in queries] == ["piano"] * 3 and queries[2].audio_rate == 16000
    with pytest.raises(UploadError, match="no query"):
        build_queries(" , ")


def test_facts_and_examples_come_from_the_run_folder(run_dir, tmp_path):
    facts = model_facts(run_dir / "model.pth", sample_rate=16000)
    assert (facts.separator, facts.conditioner) == ("film_masknet", "mini_clap")
    assert facts.scores == {"sdri": 4.25, "si_sdri": 4.25} and facts.labels == ["flute", "violin"]
    assert facts.test_manifest.name == "test.jsonl"
    for token in ("film_masknet", "SDRi 4.25 dB", "flute, violin", "test.jsonl"):
        assert token in facts.markdown()
    examples = manifest_examples(facts.test_manifest)
    assert [e.label for e in examples] == ["test_0: flute + violin", "test_1: violin + cello"]
    assert examples[0].query == "the sound of a flute" and examples[0].audio.is_file()
    assert model_facts(run_dir).scores  # the run folder works as well as its model.pth
    with pytest.raises(ExamplesError, match="no audio file"):
        folder_examples(tmp_path)


def test_separation_gives_target_residual_and_spectrograms(run_dir, tmp_path):
    from bisep.demo.separation import separate_for_page
    from bisep.inference import Separator

    sep = Separator.from_pretrained(run_dir / "model.pth", chunk_seconds=1.0)
    mixture = tones(2.5, 22050, channels=2).T.copy()  # another rate than the model's
    queries, names = build_queries("the sound of a flute, the sound of a violin")
    calls = []
    result = separate_for_page(sep, (mixture, 22050), queries, names, tmp_path, stem="song",
                               progress=lambda done, total: calls.append((done, total)))
    target, rate = sf.read(result.target, always_2d=True)
    residual, _ = sf.read(result.residual, always_2d=True)
    assert rate == 22050 and target.shape == residual.shape == mixture.T.shape
    np.testing.assert_allclose(target + residual, mixture.T, atol=1e-6)
    stems = [sf.read(p, always_2d=True)[0] for p in result.stems]
    assert [p.name for p in result.stems] == ["song_the_sound_of_a_flute.wav",
                                              "song_the_sound_of_a_violin.wav"]
    np.testing.assert_allclose(sum(stems), target, atol=1e-6)
    assert calls[-1] == (result.chunks, result.chunks) and result.chunks > 1  # chunked path
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in result.spectrograms.values())
    assert result.seconds > 0 and result.audio_seconds == pytest.approx(2.5)


def test_an_audio_example_is_a_query_and_a_short_one_is_refused(run_dir, tmp_path):
    from bisep.demo.separation import separate_for_page
    from bisep.inference import Separator

    sep = Separator.from_pretrained(run_dir / "model.pth")
    mixture = (tones(1.0, 16000).T.copy(), 16000)
    example = (tones(1.0, 16000, (440.0,)).T.copy(), 16000)
    queries, names = build_queries("", example=example)
    result = separate_for_page(sep, mixture, queries, names, tmp_path)
    assert sf.info(result.target).frames == 16000
    queries, names = build_queries("violin", example=(example[0][:, :10], 16000))
    with pytest.raises(UploadError, match="audio example"):
        separate_for_page(sep, mixture, queries, names, tmp_path)


def test_facts_of_an_exported_model_folder(run_dir, tmp_path):
    from conftest import run_cli

    run_cli("export-model", run_dir, tmp_path / "hf_model", check=True)
    facts = model_facts(tmp_path / "hf_model")
    assert facts.separator == "film_masknet" and facts.labels == ["flute", "violin"]
    assert facts.scores == {"sdri": 4.25, "si_sdri": 4.25} and facts.dataset == "synth_music"
    assert facts.export_speed > 0 and "Speed at export" in facts.markdown()


def test_spectrograms_are_pooled_to_the_image_size():
    from bisep.demo.spectrogram import max_pool

    image = np.arange(30.0).reshape(5, 6)
    np.testing.assert_array_equal(max_pool(image, (3, 3)), [[7, 9, 11], [19, 21, 23],
                                                            [25, 27, 29]])
    assert max_pool(image, (8, 8)) is image


def test_a_missing_gradio_is_a_message_naming_the_extra(monkeypatch):
    from bisep.demo.app import DemoDependencyError, import_gradio

    monkeypatch.setitem(sys.modules, "gradio", None)  # what an uninstalled package gives
    with pytest.raises(DemoDependencyError, match=r"bisep\[demo\]"):
        import_gradio()
    # The library pieces do not need it.
    assert subprocess.run([sys.executable, "-c", "import bisep.demo.separation, sys; "
                           "sys.exit('gradio' in sys.modules)"], check=False).returncode == 0


def test_cli_refuses_a_bad_port_and_a_missing_examples_folder(run_dir, tmp_path):
    from conftest import run_cli

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        out = run_cli("demo", run_dir / "model.pth", "--port", held.getsockname()[1])
    assert out.returncode == 2 and "--port" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("demo", run_dir / "model.pth", "--port", free_port(), "--examples",
                  tmp_path / "nowhere")
    assert out.returncode == 2 and "--examples" in out.stderr and "no such folder" in out.stderr


# -- the page in a real browser -----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    """``python -m bisep demo`` on a free port, as a subprocess: its URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "demo.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "toolkit"), os.environ.get("PYTHONPATH", "")]))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bisep", "demo", str(run_dir / "model.pth"),
                                 "--port", str(port), "--max-seconds", str(MAX_SECONDS)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    start = time.monotonic()
    try:
        while not _responds(url):
            if proc.poll() is not None or time.monotonic() - start > WAIT:
                pytest.fail(f"bisep demo did not start:\n{log_path.read_text()}")
            time.sleep(0.5)
        print(f"bisep demo answered after {time.monotonic() - start:.1f} s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Traceback" not in log_path.read_text()  # every bad upload was a message


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(tools/install.sh installs it)")
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"no browser to drive: {', '.join(missing)} not found (as root, "
                    f"tools/install.sh installs Debian's chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, WAIT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#mixture input[type=file]"))


def _separate(browser, path: Path, query: str) -> str:
    """Upload ``path`` as the mixture, type ``query``, click Separate; the status text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.CSS_SELECTOR, "#mixture input[type=file]").send_keys(str(path))
    # The upload is done when the page offers to clear it.
    WebDriverWait(browser, WAIT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#mixture button[aria-label=Clear]"))
    box = browser.find_element(By.CSS_SELECTOR, "#query textarea")
    box.clear()
    box.send_keys(query)
    browser.find_element(By.ID, "separate").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, WAIT).until(lambda d: ("Separated" in status.text
                                                  or "Error" in status.text))
    return status.text


def _download(href: str, tmp_path: Path, name: str) -> tuple[np.ndarray, int]:
    with urllib.request.urlopen(href, timeout=30) as response:
        (tmp_path / name).write_bytes(response.read())
    return sf.read(tmp_path / name, always_2d=True)


def test_the_page_separates_an_upload(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    mixture = tmp_path / "duet.wav"
    sf.write(mixture, tones(3.0, 22050, channels=2), 22050)
    _open(browser, server)
    for token in ("film_masknet", "SDRi 4.25 dB", "test_0: flute + violin"):
        assert token in browser.find_element(By.TAG_NAME, "body").text
    started = time.monotonic()
    status = _separate(browser, mixture, "the sound of a flute, the sound of a violin")
    print(f"first result after {time.monotonic() - started:.1f} s: {status}")
    assert "Separated 3.0 s" in status and "2 queries" in status, status
    stems = browser.find_element(By.ID, "stems").text
    assert "duet_the_sound_of_a_flute" in stems and "duet_the_sound_of_a_violin" in stems

    decoded = {}
    for name in ("target", "residual"):
        link = browser.find_element(By.CSS_SELECTOR, f"#{name} a[download]")
        href = link.get_attribute("href")
        assert urlparse(href).hostname == "127.0.0.1" and href.endswith(".wav")
        decoded[name], rate = _download(href, tmp_path, f"{name}.wav")
        assert rate == 22050 and decoded[name].shape == (3 * 22050, 2)
        # The browser decodes it to the same length too.
        frames = browser.execute_async_script(
            "const [url, rate, done] = arguments;"
            "fetch(url).then(r => r.arrayBuffer())"
            ".then(b => new OfflineAudioContext(1, 1, rate).decodeAudioData(b))"
            ".then(a => done(a.length), e => done(String(e)));", href, 22050)
        assert frames == 3 * 22050
    np.testing.assert_allclose(decoded["target"] + decoded["residual"], sf.read(mixture)[0],
                               atol=1e-5)
    for name in ("mixture", "target", "residual"):
        image = browser.find_element(By.CSS_SELECTOR, f"#{name}-spectrogram img")
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 100
    shot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_an_example_mixture_separates(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, server)
    browser.find_element(By.XPATH, "//button[contains(., 'test_1: violin + cello')]").click()
    box = browser.find_element(By.CSS_SELECTOR, "#query textarea")
    WebDriverWait(browser, WAIT).until(lambda d: box.get_attribute("value"))
    assert box.get_attribute("value") == "the sound of a violin"
    browser.find_element(By.ID, "separate").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, WAIT).until(lambda d: "Separated" in status.text
                                       or "Error" in status.text)
    assert "Separated 2.0 s" in status.text, status.text


@pytest.mark.parametrize("kind, tokens", [
    ("text", ("notes.wav", "not an audio file")),
    ("empty", ("silence.wav", "empty")),
    ("long", ("long.wav", "--max-seconds")),
])
def test_a_bad_upload_shows_a_message_and_the_server_keeps_serving(server, browser, tmp_path,
                                                                   kind, tokens):
    path = tmp_path / {"text": "notes.wav", "empty": "silence.wav", "long": "long.wav"}[kind]
    if kind == "text":
        path.write_text("these are notes, not audio\n")
    elif kind == "empty":
        path.touch()
    else:
        sf.write(path, np.zeros(8000 * (MAX_SECONDS + 5), np.float32), 8000)
    _open(browser, server)
    status = _separate(browser, path, "the sound of a violin")
    assert status.startswith("Error") and all(t in status for t in tokens), status
    assert "Traceback" not in browser.page_source
    assert _responds(server)


def test_the_page_calls_no_other_host(server, browser):
    """Every request the page made (all tests so far included) went to the demo server."""
    _open(browser, server)
    hosts = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            url = urlparse(message["params"].get("request", message["params"]).get("url", ""))
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.hostname)
    assert hosts == {"127.0.0.1"}
