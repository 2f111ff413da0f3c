"""The Gradio page of ``bisep demo``: :func:`build_app` makes it, :func:`serve` loads a
model and serves it.

::

    from bisep import Separator
    from bisep.demo.app import build_app
    from bisep.demo.facts import model_facts

    sep = Separator.from_pretrained("exp/weak/model.pth")
    app = build_app(sep, model_facts("exp/weak/model.pth"), examples=[], work_dir="/tmp/demo")
    app.launch(server_name="127.0.0.1")

The page makes no outbound call: Gradio's analytics are switched off (its environment
variable is set before Gradio is imported, and the app is built with
``analytics_enabled=False``), there is no share link,
server-side rendering (a Node process) is off, and the theme's fonts are the ones Gradio
ships (served by this server, not fetched from a font service).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

from bisep.demo.examples import Example
from bisep.demo.facts import ModelFacts
from bisep.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_SECONDS = 600.0
# The folders of past requests kept on disk (Gradio serves their files until it has
# copied them into its own cache); older ones are deleted as new requests come in.
KEEP_REQUESTS = 16
# Gradio's own cache of uploads and outputs: files older than an hour go, checked hourly.
GRADIO_CACHE = (3600, 3600)


class DemoDependencyError(ImportError, UserError):
    """Gradio (the ``bisep[demo]`` extra) is not installed."""


class PortError(OSError, UserError):
    """The address or port to serve on cannot be bound."""


def check_port(host: str, port: int) -> None:
    """Refuse a port that is out of range or taken, before a model is loaded for it."""
    import socket

    if not 0 < port < 65536:
        raise PortError(f"--port {port}: a port is a number from 1 to 65535.")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            sock.bind((host, port))
    except OSError as exc:
        raise PortError(f"cannot serve on {host}:{port} ({exc.strerror or exc}): another "
                        f"program may hold the port; choose another with --port, or check "
                        f"--host.") from None


def import_gradio():
    """Gradio, imported with its analytics (and Hugging Face telemetry) switched off."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError as exc:
        raise DemoDependencyError(
            f"bisep demo needs Gradio, which is not installed ({exc}): install the demo "
            f"extra with `pip install 'bisep[demo]'` (tools/install.sh installs it).") from None
    return gradio


def build_app(separator, facts: ModelFacts, examples: Sequence[Example], work_dir: str | Path,
              max_seconds: float | None = DEFAULT_MAX_SECONDS):
    """The demo page for ``separator``.

    Args:
        separator: a loaded :class:`bisep.inference.Separator`.
        facts: shown at the top of the page.
        examples: the example mixtures under the inputs (may be empty).
        work_dir: where each request's outputs are written (a folder per request).
        max_seconds: the longest mixture or audio example accepted (``None``: no limit).

    Returns:
        a ``gradio.Blocks``; call ``.launch()`` on it (see :func:`serve` for the settings
        that keep it local).
    """
    gr = import_gradio()
    work_dir = Path(work_dir)

    def separate(mixture, query, negative, negative_weight, query_audio,
                 progress=gr.Progress()):
        return _separate_request(separator, work_dir, max_seconds, mixture, query, negative,
                                 negative_weight, query_audio, progress)

    limit = f" up to {max_seconds:g} s" if max_seconds else ""
    with gr.Blocks(title="bisep demo", analytics_enabled=False,
                   delete_cache=GRADIO_CACHE) as app:
        gr.Markdown("# bisep: separate a sound by describing it\n\nUpload or record a "
                    f"mixture{limit}, say what to extract, and listen to the target and to "
                    "what is left (the residual).")
        gr.Markdown(facts.markdown(), elem_id="facts")
        with gr.Row():
            with gr.Column():
                # No "share" buttons anywhere: they post to Hugging Face, an outbound call.
                mixture = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                   label="mixture", buttons=["download"], elem_id="mixture")
                query = gr.Textbox(label="what to extract (several: separate with commas)",
                                   placeholder="the sound of a violin", elem_id="query")
                with gr.Accordion("more query options", open=False):
                    negative = gr.Textbox(label="what to keep out (negative query)",
                                          placeholder="the sound of a piano",
                                          elem_id="negative")
                    negative_weight = gr.Slider(0.05, 1.0, value=0.5, step=0.05,
                                                label="negative weight", elem_id="negweight")
                    query_audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                           label="audio example of what to extract",
                                           buttons=["download"], elem_id="query-audio")
                button = gr.Button("Separate", variant="primary", elem_id="separate")
                status = gr.Markdown(elem_id="status")
            with gr.Column():
                target = gr.Audio(label="target", type="filepath", interactive=False,
                                  buttons=["download"], elem_id="target")
                residual = gr.Audio(label="residual (mixture - target)", type="filepath",
                                    interactive=False, buttons=["download"], elem_id="residual")
                stems = gr.File(label="one file per query", file_count="multiple",
                                interactive=False, visible=False, elem_id="stems")
        with gr.Row():
            # The images carry their own titles (with the queries); Gradio's label would
            # cover them.
            images = [gr.Image(label=f"{name} spectrogram", show_label=False, type="filepath",
                               interactive=False, buttons=["download", "fullscreen"],
                               elem_id=f"{name}-spectrogram")
                      for name in ("mixture", "target", "residual")]
        if examples:
            gr.Examples([[str(e.audio), e.query] for e in examples], inputs=[mixture, query],
                        example_labels=[e.label for e in examples], label="example mixtures")
        button.click(separate, inputs=[mixture, query, negative, negative_weight, query_audio],
                     outputs=[target, residual, stems, *images, status])
    return app


def _separate_request(separator, work_dir: Path, max_seconds, mixture, query, negative,
                      negative_weight, query_audio, progress):
    """One click of "Separate": target, residual, per-query stems, the three spectrograms
    and the status line. A refusal or a failure clears the outputs and shows its message
    in the status line; the server goes on serving."""
    import gradio as gr

    from bisep.demo.separation import separate_for_page
    from bisep.demo.uploads import build_queries, read_upload

    def chunk_done(done: int, total: int) -> None:
        progress((done, total), desc="separating", unit="chunk runs")

    cleared = [None, None, gr.update(value=None, visible=False), None, None, None]
    try:
        wav = read_upload(mixture, max_seconds)
        example = (read_upload(query_audio, max_seconds, what="audio example")
                   if query_audio else None)
        queries, names = build_queries(query, negative, float(negative_weight), example)
        result = separate_for_page(separator, wav, queries, names, _request_dir(work_dir),
                                   stem=Path(mixture).stem, progress=chunk_done)
    except UserError as exc:
        return [*cleared, f"**Error:** {exc}"]
    except Exception as exc:  # noqa: BLE001 - the page shows a message, the log the trace
        log.exception("the separation failed")
        return [*cleared, f"**Error:** the separation failed unexpectedly "
                          f"({type(exc).__name__}: {exc}); the server's log has the details."]
    spectrograms = [str(result.spectrograms[k]) for k in ("mixture", "target", "residual")]
    status = (f"Separated {result.audio_seconds:.1f} s of audio with {len(names)} "
              f"quer{'y' if len(names) == 1 else 'ies'} in **{result.seconds:.2f} s** "
              f"(real-time factor {result.real_time_factor:.3f}, {result.chunks} chunk run(s), "
              f"{separator.device}).")
    return [str(result.target), str(result.residual),
            gr.update(value=[str(p) for p in result.stems] or None, visible=bool(result.stems)),
            *spectrograms, status]


def _request_dir(work_dir: Path) -> Path:
    """A new folder for one request's outputs; the oldest beyond :data:`KEEP_REQUESTS` go."""
    work_dir.mkdir(parents=True, exist_ok=True)
    old = sorted((p for p in work_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for stale in old[:max(0, len(old) - KEEP_REQUESTS + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="request-", dir=work_dir))


def default_examples(model: str | Path, facts: ModelFacts) -> list[Example]:
    """A few test compositions of the recipe that trained the model, if its run folder
    records the test manifest it separated (``separated/separation.json``)."""
    from bisep.data.manifest import DataError
    from bisep.demo.examples import manifest_examples

    if facts.test_manifest is None:
        log.info("%s records no test manifest: the page offers no examples (pass "
                 "--examples DIR to add some)", model)
        return []
    try:
        return manifest_examples(facts.test_manifest)
    except DataError as exc:
        log.warning("no examples from %s: %s", facts.test_manifest, exc)
        return []


def warm_up(separator, work_dir: Path) -> None:
    """One request on a second of quiet noise, so that the first click does not pay for
    what loads on first use (the text tower on the first query, matplotlib's fonts on the
    first figure)."""
    import numpy as np

    from bisep.demo.separation import separate_for_page
    from bisep.demo.uploads import build_queries

    noise = np.random.default_rng(0).normal(0, 0.01, (1, separator.sample_rate))
    queries, names = build_queries("the sound of a violin")
    separate_for_page(separator, (noise.astype(np.float32), separator.sample_rate), queries,
                      names, _request_dir(work_dir))


def serve(model: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          examples: str | Path | None = None, max_seconds: float | None = DEFAULT_MAX_SECONDS,
          device: str = "cpu", block: bool = True):
    """Load ``model`` and serve its page at ``http://host:port`` (never shared).

    Args:
        model: a ``model.pth``, a training run's folder holding one, or a model folder.
        examples: a folder of example mixtures; ``None``: a few of the recipe's test set.
        block: wait until interrupted, then delete the request folders (``False``: return
            the running app; call ``.close()`` on it; its request folders stay in the
            system's temporary folder).

    Raises:
        DemoDependencyError: Gradio is not installed.
        ExamplesError: ``examples`` holds no audio file.
    """
    from bisep.demo.examples import folder_examples
    from bisep.demo.facts import model_facts
    from bisep.inference import Separator

    start = time.perf_counter()
    # What the user gave is checked before the slow parts (Gradio's import, the model).
    rows = folder_examples(examples) if examples is not None else None
    gr = import_gradio()
    separator = Separator.from_pretrained(model, device=device)
    facts = model_facts(model, separator.sample_rate)
    if rows is None:
        rows = default_examples(model, facts)
    work_dir = Path(tempfile.mkdtemp(prefix="bisep-demo-"))
    warm_up(separator, work_dir)
    app = build_app(separator, facts, rows, work_dir, max_seconds)
    app.queue(default_concurrency_limit=1)  # one separation at a time: CPU and memory bound
    try:
        app.launch(server_name=host, server_port=port, share=False, ssr_mode=False,
                   mcp_server=False, enable_monitoring=False, theme=gr.themes.Default(),
                   allowed_paths=[str(e.audio) for e in rows], prevent_thread_lock=True,
                   quiet=True)  # Gradio's banner suggests share=True; the log line says it
        log.info("bisep demo of %s ready at http://%s:%d after %.1f s (%d example(s)); "
                 "Ctrl-C stops it",
                 model, host, port, time.perf_counter() - start, len(rows))
        if not block:
            return app
        app.block_thread()
    finally:
        if block:
            shutil.rmtree(work_dir, ignore_errors=True)
    return app
