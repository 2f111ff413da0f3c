"""Plugin discovery through real installed distributions, and its error messages."""
import subprocess
import sys
import textwrap

import pytest

from bisep.registry import DuplicateNameError, PluginLoadWarning, UnknownNameError
from conftest import assert_mentions, run_cli


def test_builtins_are_registered_through_the_entry_point_group():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="bisep") if ep.dist.metadata["Name"] == "bisep"]
    assert [ep.value for ep in eps] == ["bisep.builtin"]
    out = run_cli("plugins", check=True)
    assert out.stdout.startswith("builtin  (bisep ")
    assert "clap_contrastive" in out.stdout


def test_third_party_distribution_is_found_and_listed(use_plugins, plugin_sites):
    registry = use_plugins("example")
    info = {i.source.plugin_name: i for i in registry.plugins()}["example"]
    assert (info.source.distribution, info.source.version) == ("bisep-example-plugin", "1.2.3")
    assert info.names == {"separator": ["example_gain"], "loss": ["example_l2"],
                          "conditioner": ["example_hash"]}
    out = run_cli("plugins", pythonpath=[plugin_sites["example"]], check=True)
    assert "example  (bisep-example-plugin 1.2.3)" in out.stdout
    assert "separator:    example_gain" in out.stdout


def test_plugins_command_does_not_import_torch():
    script = textwrap.dedent("""
        import sys
        from bisep.cli.main import main
        assert main(["plugins"]) == 0
        assert "torch" not in sys.modules, "bisep plugins imported torch"
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_unknown_name_lists_available_and_closest(use_plugins):
    registry = use_plugins("example")
    with pytest.raises(UnknownNameError) as err:
        registry.get("loss", "mix_seperate")
    message = str(err.value)
    assert "unknown loss 'mix_seperate'" in message
    assert "Did you mean 'mix_separate'?" in message
    assert "example_l2" in message and "clap_contrastive" in message


def test_unknown_kind_is_an_error(use_plugins):
    with pytest.raises(UnknownNameError, match="unknown component kind 'separators'"):
        use_plugins().names("separators")


def test_same_name_from_two_distributions_names_both(use_plugins, plugin_sites):
    registry = use_plugins("example", "clash")
    with pytest.raises(DuplicateNameError) as err:
        registry.get("loss", "example_l2")
    assert "bisep-example-plugin 1.2.3" in str(err.value)
    assert "bisep-clash-plugin 0.5.0" in str(err.value)
    assert registry.factory("separator", "example_gain")  # the clash does not break the rest
    out = run_cli("plugins", pythonpath=[plugin_sites["example"], plugin_sites["clash"]])
    assert out.returncode == 1
    assert_mentions(out.stdout, "CONFLICT", "loss 'example_l2'", "example (bisep-example-plugin)",
                    "clash (bisep-clash-plugin)")


def test_broken_plugin_is_reported_and_others_still_load(use_plugins, plugin_sites):
    with pytest.warns(PluginLoadWarning) as warned:
        registry = use_plugins("broken", "example")
    [message] = [str(w.message) for w in warned if w.category is PluginLoadWarning]
    assert_mentions(message, "'broken'", "bisep_broken_plugin.plugin", "bisep-broken-plugin 0.0.1")
    assert "example_gain" in registry.names("separator")
    assert "clap_contrastive" in registry.names("loss")
    [failure] = registry.failures
    assert failure.distribution == "bisep-broken-plugin"
    assert "a_dependency_that_is_not_installed" in failure.error
    out = run_cli("plugins", pythonpath=[plugin_sites["broken"], plugin_sites["example"]])
    assert out.returncode == 1
    assert_mentions(out.stdout, "FAILED", "broken", "bisep_broken_plugin.plugin",
                    "bisep-broken-plugin")
    assert "example  (bisep-example-plugin 1.2.3)" in out.stdout


def test_disable_autoload_keeps_builtins_and_allow_list(use_plugins, monkeypatch):
    monkeypatch.setenv("BISEP_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = use_plugins("example", "clash")
    assert [i.source.plugin_name for i in registry.plugins()] == ["builtin"]
    monkeypatch.setenv("BISEP_PLUGINS", "bisep-example-plugin")  # a distribution name
    registry = use_plugins()
    assert {i.source.plugin_name for i in registry.plugins()} == {"builtin", "example"}
    monkeypatch.setenv("BISEP_PLUGINS", "clash")  # an entry-point name
    registry = use_plugins()
    assert {i.source.plugin_name for i in registry.plugins()} == {"builtin", "clash"}


def test_block_list_skips_a_plugin(use_plugins, monkeypatch):
    monkeypatch.setenv("BISEP_BLOCK_PLUGINS", "clash, broken")
    registry = use_plugins("example", "clash", "broken")
    assert registry.failures == []
    assert registry.factory("loss", "example_l2").__name__ == "MaskL2Loss"


def test_blocking_the_builtins_says_so(use_plugins, monkeypatch):
    monkeypatch.setenv("BISEP_BLOCK_PLUGINS", "builtin")
    with pytest.raises(UnknownNameError, match="no loss is registered at all"):
        use_plugins().get("loss", "mix_separate")


def test_plugin_target_that_cannot_import_names_its_distribution(use_plugins):
    registry = use_plugins()

    class Inline:
        __name__ = "inline"

        @staticmethod
        def bisep_register_losses():
            return {"ghost": "no_such_module:Loss"}

    from bisep.hookspecs import hookimpl
    Inline.bisep_register_losses = staticmethod(hookimpl(Inline.bisep_register_losses))
    with registry.temporary_plugin(Inline(), "inline"):
        with pytest.raises(Exception) as err:
            registry.factory("loss", "ghost")
        assert_mentions(str(err.value), "loss 'ghost'", "plugin 'inline'", "'no_such_module:Loss'")
    assert "ghost" not in registry.names("loss")


def test_trace_env_prints_hook_calls(plugin_sites):
    out = run_cli("plugins", env_extra={"BISEP_TRACE_PLUGINS": "1"}, check=True)
    assert "bisep_register_separators" in out.stderr
