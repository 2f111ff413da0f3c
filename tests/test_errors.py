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

# Their modules were being edited on other branches; the one-line change to each class
# statement (add UserError as a second base) is left to the merge. strict: the test fails
# once it is made, so the mark goes with it.
PENDING = pytest.mark.xfail(strict=True, reason="class line not yet changed (issue 15)")

USER_ERRORS = [
    (AudioError, ValueError), (DataError, ValueError), (MediaError, ValueError),
    (MissingStageOutput, FileNotFoundError), (PluginError, Exception),
    (UnknownNameError, LookupError), (DuplicateNameError, PluginError), (CliError, Exception),
    pytest.param(ConfigError, ValueError, marks=PENDING),
    pytest.param(CheckpointError, ValueError, marks=PENDING),
    pytest.param(ReportError, ValueError, marks=PENDING),
    pytest.param(ScoreInputError, ValueError, marks=PENDING),
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
