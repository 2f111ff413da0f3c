"""Shared fixtures. Nothing in the test suite may touch the network."""
import os
import subprocess
import sys
from pathlib import Path

# Set before anything imports huggingface/transformers/laion_clap: without them an import
# of laion_clap retries the model hub for minutes.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = Path(__file__).parent / "plugins"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def plugin_sites(tmp_path_factory):
    """Install the test plugin distributions, each into its own site directory.

    Returns ``{"example": path, "broken": path, "clash": path}``; put a path on
    ``sys.path`` (or PYTHONPATH) to make that distribution installed.
    """
    sites = {}
    for name in ("example", "broken", "clash"):
        target = tmp_path_factory.mktemp(f"site-{name}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(target),
                        str(PLUGIN_SOURCES / f"bisep-{name}-plugin")],
                       check=True, capture_output=True)
        sites[name] = target
    return sites


@pytest.fixture
def use_plugins(plugin_sites, monkeypatch):
    """``use_plugins("example", ...)``: install those test plugins for this test; returns
    a fresh registry that sees them."""
    from bisep import registry

    def activate(*names):
        for name in names:
            monkeypatch.syspath_prepend(str(plugin_sites[name]))
        registry.reset_registry()
        return registry.get_registry()

    yield activate
    registry.reset_registry()
    for name in ("bisep_example_plugin", "bisep_broken_plugin", "bisep_clash_plugin"):
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


def run_cli(*args, env_extra=None, pythonpath=(), check=False, timeout=300):
    """Run the installed ``bisep`` console script in a subprocess."""
    env = dict(os.environ)
    env.update(env_extra or {})
    if pythonpath:  # before the caller's own PYTHONPATH, which stays (a source checkout)
        env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")])
    out = subprocess.run([str(BIN / "bisep"), *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"bisep {' '.join(map(str, args))} failed:\n{out.stdout}\n{out.stderr}")
    return out


def assert_mentions(text: str, *tokens) -> None:
    """Assert that a message names every token: the file, the option, the bad value, the fix.

    Tests check these rather than a whole sentence, so rewording a message breaks no test
    while a message that stops naming what the user must change does."""
    missing = [str(token) for token in tokens if str(token) not in text]
    assert not missing, f"{missing} not in: {text}"
