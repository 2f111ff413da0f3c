"""``bisep demo MODEL``: a local web page to listen to a trained model (Gradio).

    bisep demo exp/weak/model.pth                       # http://127.0.0.1:7860
    bisep demo exp/weak/hf_model --port 8080 --examples my_mixtures/

Needs the ``bisep[demo]`` extra (Gradio). The page binds to 127.0.0.1 unless ``--host``
says otherwise, is never shared through a public link, and makes no outbound call (see
:mod:`bisep.demo.app` and docs/demo.md).
"""
from __future__ import annotations

from bisep.cli.errors import CliError


def add_parser(sub):
    p = sub.add_parser("demo", help="serve a web page to try a trained model (Gradio)",
                       description="Serve a local web page where a mixture is uploaded, "
                                   "recorded or picked from examples, queried with text (or "
                                   "an audio example), and its target and residual are "
                                   "played, downloaded and shown as spectrograms. Needs "
                                   "`pip install 'bisep[demo]'`. See docs/demo.md.")
    p.add_argument("model", metavar="MODEL",
                   help="a model.pth, a training run's folder holding one, or a model folder "
                        "from `bisep export-model`")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to bind (default 127.0.0.1: this machine only; "
                        "0.0.0.0 serves the local network)")
    p.add_argument("--port", type=int, default=7860, help="the port (default 7860)")
    p.add_argument("--examples", metavar="DIR",
                   help="a folder of example mixtures (default: a few of the recipe's test "
                        "compositions, when the model's run folder records them)")
    p.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                   help="the longest upload accepted, in seconds (default 600; 0: no limit)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from bisep.demo.app import check_port, serve

    if args.max_seconds < 0:
        raise CliError(f"--max-seconds {args.max_seconds:g}: give a length in seconds, or 0 "
                       f"for no limit.")
    check_port(args.host, args.port)  # before the model loads
    serve(args.model, host=args.host, port=args.port, examples=args.examples,
          max_seconds=args.max_seconds or None, device=args.device)
    return 0
