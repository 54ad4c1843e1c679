"""What ships: an image built from pinned, hash-checked dependencies on a pinned base, and a compose file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, hashes) from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text()
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", text):
        first = block.strip().splitlines()[0] if block.strip() else ""
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", first)
        if match:
            entries[canonicalize_name(match.group(1))] = (
                match.group(2),
                re.findall(r"--hash=sha256:[0-9a-f]{64}", block),
            )
    return entries


def test_every_runtime_dependency_is_pinned_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = locked()
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not in requirements.lock (run `make lock`)"
        version, _hashes = lock[name]
        assert requirement.specifier.contains(version), f"{name}=={version} no longer satisfies {requirement}"
    assert all(hashes for _, hashes in lock.values()), "every locked requirement carries its hashes"
    assert not re.search(
        r"^--(find-links|index-url|extra-index-url)", (ROOT / "requirements.lock").read_text(), re.M
    )


def test_the_image_installs_only_what_is_locked_on_a_pinned_base() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base) for base in bases), bases
    assert "--require-hashes" in dockerfile and "-r requirements.lock" in dockerfile
    assert "--no-deps" in dockerfile, "TARS itself must not resolve its dependencies again"
    copied = set(re.findall(r"^COPY\s+(\S+)", dockerfile, re.M))
    assert not copied & {"sandbox", "tests", "bench"}, (
        "the sandbox, tests and benchmarks stay out of the image"
    )
    assert re.search(r"^USER\s+tars", dockerfile, re.M)


def test_compose_runs_tars_on_postgres_like_production() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert compose["tars"]["build"] == "."
    assert compose["tars"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["tars"]["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert compose["tars"]["read_only"] is True
    assert int(compose["tars"]["stop_grace_period"].rstrip("s")) >= 20
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", compose["postgres"]["image"])
