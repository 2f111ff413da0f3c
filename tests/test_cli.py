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
