"""Editing a user plugin's files reloads it; an edit that asks for more permissions
stops it until the user grants them."""

from __future__ import annotations

from pathlib import Path

from .support import plugin_daemon, wait_for

MANIFEST = 'id = "editable"\nversion = "{version}"\n'
CODE = (
    "from plugins.sdk import Plugin\nplugin = Plugin()\n\n"
    "@plugin.command('version')\ndef version(ctx):\n    return {value!r}\n"
)


def test_editing_a_user_plugin_reloads_it(tmp_path: Path) -> None:
    source = tmp_path / "editable"
    source.mkdir()
    (source / "plugin.toml").write_text(MANIFEST.format(version="1.0"))
    (source / "plugin.py").write_text(CODE.format(value="one"))
    with plugin_daemon() as d:
        d.install(source)
        assert d.hearth("plugins", "run", "editable", "version").stdout.strip() == "one"
        pid = d.info("editable")["pid"]
        installed = d.paths.config / "plugins" / "editable"
        (installed / "plugin.py").write_text(CODE.format(value="two"))
        wait_for(
            lambda: d.hearth("plugins", "run", "editable", "version").stdout.strip() == "two",
            60,
            "the edited code to run",
        )
        info = d.info("editable")
        assert info["pid"] != pid and info["state"] == "running"
        assert "reloaded after a change to its files" in d.log_text("editable")

        # Asking for more than was granted stops it until the user says yes again.
        (installed / "plugin.toml").write_text(
            MANIFEST.format(version="1.1") + '[permissions]\nnetwork = ["example.com"]\n'
        )
        wait_for(lambda: d.info("editable")["state"] == "needs approval", 60, "needs approval")
        out = d.hearth("plugins", "run", "editable", "version")
        assert out.returncode == 3
        assert "asks for permissions you have not granted" in out.stderr
        assert (
            "network: reach example.com"
            in d.hearth("plugins", "enable", "editable", "--yes").stdout
        )
        assert d.hearth("plugins", "run", "editable", "version").stdout.strip() == "two"

        # A broken edit is reported, and fixing it brings the plugin back.
        (installed / "plugin.py").write_text("this is not python(")
        wait_for(lambda: d.info("editable")["state"] in ("failed", "refused"), 60, "failure")
        assert "SyntaxError" in d.hearth("plugins", "list").stdout
        (installed / "plugin.py").write_text(CODE.format(value="three"))
        wait_for(
            lambda: d.hearth("plugins", "run", "editable", "version").stdout.strip() == "three",
            60,
            "the fixed code to run",
        )
