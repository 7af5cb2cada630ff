"""Test a plugin from pytest, through the `migrun` binary: set up tables, run, assert.

```
# test_app.py
from migrun_sdk.testing import Workspace, build

def test_fill(tmp_path):
    ws = Workspace(tmp_path, plugin=build("."))     # builds ./app.py once per session
    report = ws.run(set={"count": 5})               # `migrun <plugin> --json`, parsed
    assert report.units["fill"]["status"] == "committed"
    assert ws.sql("target", "SELECT COUNT(*) FROM greetings").scalar() == 5
```

- `Workspace(dir, plugin, dbs={...})`: a folder holding the run's `migrun.toml` (written
  when `dbs` or `config` are given), journals and, by default, the embedded SQLite
  databases `migrun-data/<connection>.sqlite`. `dbs` maps a connection to a URL
  (`"postgres://…"`, `"mysql://…"`, `"sqlite://source.sqlite"`: relative to `dir`), or to
  `(url, access)`; without an access the connection gets the one the plugin declares.
- `ws.sql(connection, *statements)`: `migrun sql --json`, every statement in one
  transaction on that connection; returns the last statement's `SqlResult`
  (`.columns`, `.rows`, `.dicts()`, `.scalar()`, `.rows_affected`); a SQL error raises `SqlError`.
- `ws.run(set=..., dry_run=..., only=..., args=..., expect=0)`: the run's `Report`
  (the `--json` report as a dict, with `.units`, `.checks`, `.messages(level)`, `.failure`,
  `.code`, `.stderr`);
  a different exit code fails the test with migrun's output.
- `build(project_dir)`: runs componentize-py on the project's `app.py` (with this
  SDK on its path) into `<project>/<name>.wasm`, once per test session.

The `migrun` binary is `$MIGRUN` when set, else the one on `PATH`.
"""

import json
import os
import shutil
import subprocess
import tempfile

__all__ = ["Workspace", "Report", "SqlResult", "SqlError", "MigrunError", "build", "migrun_binary"]


class MigrunError(AssertionError):
    """migrun exited with an unexpected code; the message holds its output."""


class SqlError(MigrunError):
    """`migrun sql` refused a statement (nothing was committed); the message is the database's."""


def migrun_binary() -> str:
    """The `migrun` to run: `$MIGRUN`, else `migrun` on `PATH`."""
    found = os.environ.get("MIGRUN") or shutil.which("migrun")
    if not found:
        raise MigrunError("migrun not found: put it on PATH or set MIGRUN to its path")
    return found


class SqlResult:
    """The rows of the last statement given to `Workspace.sql`."""

    def __init__(self, data: dict):
        self.data = data
        self.columns = data.get("columns", [])
        self.rows = data.get("rows", [])
        self.rows_affected = data.get("rows_affected")

    def dicts(self) -> list:
        """The rows as dicts by column name."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def scalar(self):
        """The first value of the first row (None when there is no row)."""
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def __eq__(self, other):
        if isinstance(other, list):
            return self.rows == other
        return NotImplemented

    def __repr__(self):
        return f"SqlResult(columns={self.columns}, rows={self.rows})"


class Report(dict):
    """A run's `--json` report, with its exit `code`, `stdout` and `stderr`."""

    code = None
    stdout = ""
    stderr = ""

    @property
    def units(self) -> dict:
        """The units by name (each a dict: `status`, `writes`, …)."""
        return {u["name"]: u for u in self.get("units", [])}

    @property
    def checks(self) -> dict:
        """The checks by name: `{"name": {"ok": True, "detail": "…"}}`."""
        return {c["name"]: c for c in self.get("checks", [])}

    @property
    def failure(self):
        return self.get("failure")

    def messages(self, level=None) -> list:
        """The plugin's messages (dicts: `level`, `message`, `fields` as [key, value] pairs),
        optionally only those at `level` (`"warn"`, `"info"`, …)."""
        return [m for m in self.get("messages", []) if level is None or m.get("level") == level]

    @property
    def succeeded(self) -> bool:
        return self.code == 0


def _toml_string(text: str) -> str:
    return json.dumps(text)


class Workspace:
    """A folder to run a plugin in; see the module's documentation."""

    def __init__(self, dir=None, plugin=None, dbs=None, config=None, files=None):
        if dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="migrun-test-")
            dir = self._tmp.name
        self.dir = os.path.abspath(str(dir))
        os.makedirs(self.dir, exist_ok=True)
        self.plugin = None if plugin is None else os.path.abspath(str(plugin))
        self.dbs = dict(dbs or {})
        self.config = dict(config or {})
        self.files = files
        if self.dbs or self.config or self.files:
            self.write_config()

    @property
    def config_path(self):
        path = os.path.join(self.dir, "migrun.toml")
        return path if os.path.exists(path) else None

    def write_config(self):
        """Writes `migrun.toml` from `dbs`, `config` and `files`."""
        lines = []
        for name, spec in self.dbs.items():
            url, access = (spec, None) if isinstance(spec, str) else spec
            lines += [f"[connections.{name}]", f"url = {_toml_string(url)}"]
            if access:
                lines.append(f"access = {_toml_string(access)}")
            lines.append("")
        if self.config:
            lines.append("[config]")
            for key, value in self.config.items():
                if isinstance(value, bool):
                    value = "true" if value else "false"
                lines.append(f"{key} = {_toml_string(str(value))}")
            lines.append("")
        if self.files:
            lines += ["[files]", f"dir = {_toml_string(str(self.files))}", ""]
        with open(os.path.join(self.dir, "migrun.toml"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))

    def path(self, *parts) -> str:
        return os.path.join(self.dir, *parts)

    def _migrun(self, args):
        cmd = [migrun_binary()] + list(args)
        return subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True)

    def _config_args(self):
        return ["-c", self.config_path] if self.config_path else []

    def sql(self, connection: str, *statements) -> SqlResult:
        """Runs the statements in order, in one transaction on `connection`; the last one's rows."""
        if not statements:
            raise ValueError("sql() needs at least one statement")
        out = self._migrun(["sql", *self._config_args(), "--json", connection, *statements])
        if out.returncode != 0:
            raise SqlError(f"migrun sql {connection} failed (exit {out.returncode}):\n{out.stderr.strip()}")
        return SqlResult(json.loads(out.stdout))

    def run(self, set=None, dry_run=False, only=None, args=(), expect=0, plugin=None) -> Report:
        """Runs the plugin (`migrun <plugin> --json …`); `expect`: the exit code (or codes) to accept, None for any."""
        plugin = plugin or self.plugin
        if plugin is None:
            raise ValueError("no plugin: Workspace(plugin=...) or run(plugin=...)")
        cmd = [str(plugin), "--json", *self._config_args()]
        if dry_run:
            cmd.append("--dry-run")
        for key, value in (set or {}).items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            cmd += ["--set", f"{key}={value}"]
        if only:
            cmd += ["--only", only if isinstance(only, str) else ",".join(only)]
        cmd += list(args)
        out = self._migrun(cmd)
        codes = None if expect is None else ((expect,) if isinstance(expect, int) else tuple(expect))
        if codes is not None and out.returncode not in codes:
            raise MigrunError(
                f"migrun {' '.join(cmd)} exited {out.returncode}, expected {expect}\n"
                f"--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
            )
        try:
            report = Report(json.loads(out.stdout)) if out.stdout.strip() else Report()
        except ValueError:
            report = Report()
        report.code, report.stdout, report.stderr = out.returncode, out.stdout, out.stderr
        return report


_BUILT = {}


def build(project=".", module="app", wit=None, output=None) -> str:
    """Builds `<project>/<module>.py` into a component with componentize-py (once per process) and
    returns its path. `wit`: the contract's folder (default: `<project>/wit`, else the SDK's own)."""
    project = os.path.abspath(str(project))
    key = (project, module)
    if key in _BUILT:
        return _BUILT[key]
    sdk_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if wit is None:
        wit = os.path.join(project, "wit")
        if not os.path.isdir(wit):
            wit = os.path.join(sdk_root, "migrun_sdk", "wit")
    if output is None:
        output = os.path.join(project, os.path.basename(project).replace("-", "_") + ".wasm")
    tool = shutil.which("componentize-py")
    if tool is None:
        raise MigrunError("componentize-py not found (pip install componentize-py==0.25.1)")
    cmd = [tool, "-d", wit, "-w", "migration", "componentize", module, "-p", project, "-p", sdk_root, "-o", output]
    out = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    if out.returncode != 0:
        raise MigrunError(f"componentize-py failed:\n{out.stdout}\n{out.stderr}")
    _BUILT[key] = output
    return output
