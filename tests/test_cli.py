"""The console script: help and version for every subcommand, in real subprocesses."""
import pytest

import bisep
from bisep.cli.main import SUBCOMMANDS
from conftest import run_cli


def test_version():
    out = run_cli("--version", check=True)
    assert out.stdout.startswith(f"bisep {bisep.__version__}")


def test_help_lists_every_subcommand():
    out = run_cli("--help", check=True)
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name):
    out = run_cli(name, "--help", check=True)
    assert out.stdout.startswith(f"usage: bisep {name}")


def test_no_subcommand_prints_help_and_fails():
    out = run_cli()
    assert out.returncode == 2 and "usage: bisep" in out.stdout


def test_python_dash_m_reports_user_errors_without_traceback(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "c.yaml"
    bad.write_text("sed: 1\n")
    out = subprocess.run([sys.executable, "-m", "bisep", "config", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "unknown key 'sed'" in out.stderr and "Traceback" not in out.stderr


def test_library_user_errors_print_as_messages(monkeypatch, capsys):
    from bisep.cli import main as cli, plugins
    from bisep.data.manifest import DataError

    def run(args):
        raise DataError("x.jsonl:3: no 'audio' key")

    monkeypatch.setattr(plugins, "run", run)
    assert cli.main(["plugins"]) == 2
    assert capsys.readouterr().err == "bisep plugins: error: x.jsonl:3: no 'audio' key\n"


def test_library_log_shows_while_a_command_runs(monkeypatch, capsys):
    import logging

    from bisep.cli import main as cli, plugins

    def run(args):
        logging.getLogger("bisep.data.corpus").info("music: 3 sources listed")
        logging.getLogger("bisep.data.corpus").debug("not shown")
        logging.getLogger("bisep.train.fit").warning("odd")
        return 0

    monkeypatch.setattr(plugins, "run", run)
    logger = logging.getLogger("bisep")
    handlers, level = list(logger.handlers), logger.level
    assert cli.main(["plugins"]) == 0
    out, err = capsys.readouterr()
    assert out == "music: 3 sources listed\n"  # plain lines on stdout, as print gave them
    assert err == "bisep.train.fit: WARNING: odd\n"
    assert (logger.handlers, logger.level) == (handlers, level)  # gone with the command
