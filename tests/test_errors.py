"""One base class, bisep.errors.UserError, for every error whose message is for the user."""
import pytest

from bisep.audio import AudioError
from bisep.checkpoint import CheckpointError
from bisep.cli.main import CliError
from bisep.config import ConfigError
from bisep.data.manifest import DataError
from bisep.data.media import MediaError
from bisep.errors import UserError
from bisep.metrics.files import ScoreInputError
from bisep.registry import DuplicateNameError, PluginError, UnknownNameError
from bisep.report import ReportError
from bisep.train.datamodule import MissingStageOutput

USER_ERRORS = [
    (AudioError, ValueError), (DataError, ValueError), (MediaError, ValueError),
    (MissingStageOutput, FileNotFoundError), (PluginError, Exception),
    (UnknownNameError, LookupError), (DuplicateNameError, PluginError), (CliError, Exception),
    (ConfigError, ValueError),
    (CheckpointError, ValueError),
    (ReportError, ValueError),
    (ScoreInputError, ValueError),
]


@pytest.mark.parametrize("cls, builtin", USER_ERRORS)
def test_user_errors_keep_their_builtin_base_and_derive_from_user_error(cls, builtin):
    assert issubclass(cls, builtin)  # existing `except ValueError` etc. still catch it
    assert issubclass(cls, UserError)


def test_errors_module_imports_nothing():
    import ast
    import inspect

    import bisep.errors

    tree = ast.parse(inspect.getsource(bisep.errors))
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
