"""docker-compose.yml and the README agree: every variable and every secret file the
compose file needs is named in the README's compose section, every command a service runs
is a real `habeas` command with real options, and every Habeas setting it sets exists.
(`docker compose config` itself runs in CI where Docker Compose is installed.)"""

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from app.cli import cli
from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SECRETS_IN_CONTAINER = "/run/secrets/habeas/"


def readme_compose_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Running with docker compose")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def habeas_services() -> dict[str, dict[str, Any]]:
    """The services that run the Habeas image."""
    return {name: spec for name, spec in COMPOSE["services"].items() if spec.get("build")}


def variables() -> set[str]:
    text = (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def secret_files() -> set[str]:
    """The key files the services read from ./secrets: mounted one by one, or named by
    their settings inside a mounted directory."""
    files = set()
    for spec in habeas_services().values():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./secrets/"):
                files.add(source.removeprefix("./secrets/"))
        for value in spec.get("environment", {}).values():
            if str(value).startswith(SECRETS_IN_CONTAINER):
                files.add(str(value).removeprefix(SECRETS_IN_CONTAINER))
    return files


def habeas_invocations(command: list[str] | str) -> list[list[str]]:
    """Every `habeas …` a command runs, also inside `sh -c "a && b"`."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        return [
            invocation
            for part in re.split(r"&&|;|\|\|", words[2])
            for invocation in habeas_invocations(part.strip().removeprefix("exec "))
        ]
    return [words[1:]] if words and words[0] == "habeas" else []


def resolve(arguments: list[str]) -> tuple[Any, list[str]]:
    """The command `habeas ARGUMENTS` runs (typer's click command), and the options given
    to it."""
    command: Any = typer.main.get_command(cli)
    rest = list(arguments)
    while isinstance(getattr(command, "commands", None), dict) and rest:
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`habeas {' '.join(arguments)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    assert not hasattr(command, "commands"), f"`habeas {' '.join(arguments)}` is a group"
    return command, [word for word in rest if word.startswith("-")]


def all_invocations() -> list[list[str]]:
    found = [
        invocation
        for spec in habeas_services().values()
        if "command" in spec
        for invocation in habeas_invocations(spec["command"])
    ]
    cmd = re.search(r"^CMD (.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd is not None
    return found + habeas_invocations(json.loads(cmd.group(1)))


def test_the_readme_names_every_variable_the_compose_file_needs() -> None:
    section = readme_compose_section()
    assert variables() >= {"POSTGRES_PASSWORD", "HABEAS_APP_DB_PASSWORD"}
    missing = {name for name in variables() if f"`{name}`" not in section}
    assert not missing, f"name these in the README's compose section: {sorted(missing)}"


def test_the_readme_names_every_secret_file_the_services_read() -> None:
    section = readme_compose_section()
    # The metrics token too: /metrics carries the integrity alert's gauge.
    assert secret_files() >= {"jwt.json", "data.json", "audit.json", "metrics-token"}
    missing = {name for name in secret_files() if f"`{name}`" not in section}
    assert not missing, f"name these in the README's compose section: {sorted(missing)}"


def test_every_command_is_a_real_habeas_command_with_real_options() -> None:
    invocations = all_invocations()
    assert ["worker"] in invocations and any(i[:1] == ["serve"] for i in invocations)
    for invocation in invocations:
        command, options = resolve(invocation)
        known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
        unknown = set(options) - known
        assert not unknown, f"`habeas {' '.join(invocation)}`: no such options {unknown}"


def test_every_habeas_setting_the_services_set_exists() -> None:
    settings = {f"HABEAS_{name.upper()}" for name in Settings.model_fields} | {"DATABASE_URL"}
    for name, spec in habeas_services().items():
        unknown = set(spec.get("environment", {})) - settings
        assert not unknown, f"service {name}: not Habeas settings: {sorted(unknown)}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["sh", "-c", "habeas migrate && habeas db grant habeas_app"],
            [["migrate"], ["db", "grant", "habeas_app"]],
        ),
        (
            "sh -c 'habeas migrate && exec habeas serve --no-migrate'",
            [["migrate"], ["serve", "--no-migrate"]],
        ),
        (["python", "-c", "print()"], []),
    ],
)
def test_commands_are_read_as_a_shell_would(command: Any, expected: list[list[str]]) -> None:
    assert habeas_invocations(command) == expected


def test_an_unknown_command_or_option_is_caught() -> None:
    with pytest.raises(AssertionError, match="no command"):
        resolve(["wroker"])
    command, options = resolve(["serve", "--hots", "x"])
    assert options == ["--hots"]
    assert "--hots" not in {opt for param in command.params for opt in param.opts}
