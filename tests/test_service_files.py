"""The Dockerfile and the systemd unit (issue 9): parsed and checked, and the wheel
they install built and looked into. No Docker daemon needed."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from monitor.cli import build_parser

ROOT = Path(__file__).parent.parent


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins, args in dockerfile():
        if ins == "FROM":
            found.append([])
        found[-1].append((ins, args))
    return found


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_dockerfile_is_multi_stage_on_slim() -> None:
    build, runtime = stages()
    assert build[0] == ("FROM", "python:3.11-slim AS build")
    assert runtime[0][1].startswith("python:3.11-slim")
    assert any(ins == "RUN" and "pip wheel" in args for ins, args in build)
    installs = [args for ins, args in runtime if ins == "RUN" and "pip install" in args]
    assert installs and all("--no-index" in a and "from=build" in a for a in installs)


def test_runtime_stage() -> None:
    runtime = stages()[-1]
    users = [args for ins, args in runtime if ins == "USER"]
    assert users and users[-1] not in ("root", "0")
    volumes = [args for ins, args in runtime if ins == "VOLUME"]
    assert volumes == ["/data"]
    env = " ".join(args for ins, args in runtime if ins == "ENV")
    assert "MONITOR_DATABASE_URL=sqlite:////data/monitor.db" in env
    assert "MONITOR_HEARTBEAT=/data/heartbeat" in env
    (cmd,) = [exec_form(args) for ins, args in runtime if ins == "CMD"]
    assert cmd == ["monitor", "run"]
    (health,) = [args for ins, args in runtime if ins == "HEALTHCHECK"]
    assert exec_form(health[health.index("CMD ") + 4 :]) == ["monitor", "healthcheck"]
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert not [ln for ln in text.splitlines() if not ln.lstrip().startswith("#") and ("curl" in ln or "wget" in ln)]


def test_docker_commands_exist_in_the_cli() -> None:
    runtime = stages()[-1]
    parser = build_parser()
    for ins, args in runtime:
        if ins == "CMD":
            command = exec_form(args)
        elif ins == "HEALTHCHECK":
            command = exec_form(args[args.index("CMD ") + 4 :])
        else:
            continue
        assert command[0] == "monitor"
        parsed = parser.parse_args(command[1:])
        assert parsed.func.__name__ == "cmd_" + command[1]


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", "tests", "**/*.db*", "contrib"):
        assert entry in ignored


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(ROOT / "contrib" / "monitor.service", encoding="utf-8")
    return parser


def test_systemd_unit() -> None:
    u = unit()
    s = u["Service"]
    assert s["ExecStart"].endswith("/monitor run")
    assert s["Restart"] == "always"
    assert s["StateDirectory"] == "monitor"
    assert s["EnvironmentFile"] == "-/etc/monitor/env"
    assert s.get("DynamicUser") == "yes" or s.get("User") not in (None, "root")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictNamespaces": "yes",
    }.items():
        assert s[key] == value, key
    assert s["CapabilityBoundingSet"] == ""
    # The database and the heartbeat live in the state directory, the only writable place.
    assert "sqlite:////var/lib/monitor/monitor.db" in (ROOT / "contrib" / "monitor.service").read_text()
    assert s["WorkingDirectory"] == "/var/lib/monitor"
    assert int(s["TimeoutStopSec"]) > 10  # monitor run exits within 10 s of SIGTERM
    assert u["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    text = (ROOT / "contrib" / "monitor.service").read_text(encoding="utf-8")
    # verify wants ExecStart to exist: point it at a binary this machine has.
    (tmp_path / "monitor.service").write_text(text.replace("/opt/monitor/bin/monitor run", "/bin/true"))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "monitor.service")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "monitor.service" not in r.stderr, r.stderr


@pytest.mark.slow
def test_wheel_has_the_entry_point_and_migrations(tmp_path: Path) -> None:
    # Built from a copy, so the checkout gets no build/ or egg-info from us.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("monitor", "storage", "alerts"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("news_monitor-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        eps = configparser.ConfigParser()
        eps.read_string(z.read(entry_points).decode())
    assert eps["console_scripts"]["monitor"] == "monitor.cli:main"
    assert "storage/migrations/env.py" in names
    assert any(n.startswith("storage/migrations/versions/0009") for n in names)
    for module in ("monitor/cli.py", "monitor/health.py", "monitor/retention.py", "monitor/opml.py"):
        assert module in names
