"""Run Terraform (and checkov) over terraform/ offline: the AWS provider from a local plugin
directory, every Terraform file written into a temporary copy of terraform/, never the repository.

`terraform init` writes .terraform.lock.hcl next to the configuration whatever TF_DATA_DIR says,
so the commands run in a copy of the tree (taken once per Workspace) rather than in the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/deploy/ -> tests/ -> backend/ -> platform/ -> the repository root
REPO_ROOT = Path(__file__).resolve().parents[4]
TERRAFORM_ROOT = REPO_ROOT / "terraform"
CHECKOV = TERRAFORM_ROOT / "checks" / ".venv" / "bin" / "checkov"

PLUGIN_DIR_VARIABLE = "TRAINYARD_TF_PLUGIN_DIR"
DEFAULT_PLUGIN_DIR = Path("/opt/tf-plugins")
AWS_PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"

# Terraform reads these from the environment; a developer's own must not change what is checked.
_FOREIGN_PREFIXES = ("TF_", "CHECKPOINT_")


def configurations() -> list[str]:
    """Every module and example directory, relative to terraform/: a new module is checked
    without touching the tests."""
    return sorted(
        path.relative_to(TERRAFORM_ROOT).as_posix()
        for kind in ("modules", "examples")
        for path in TERRAFORM_ROOT.glob(f"{kind}/*")
        if path.is_dir()
    )


def terraform_binary() -> str:
    """The terraform executable on PATH, or a failure saying how to get one."""
    found = shutil.which("terraform")
    if found is None:
        pytest.fail(
            "terraform not found on PATH: install Terraform >= 1.9 "
            "(https://developer.hashicorp.com/terraform/install)",
            pytrace=False,
        )
    return found


def plugin_dir() -> Path:
    """The local provider mirror holding hashicorp/aws, or a failure naming where it was looked
    for and how to fill one."""
    configured = os.environ.get(PLUGIN_DIR_VARIABLE)
    directory = Path(configured) if configured else DEFAULT_PLUGIN_DIR
    if not (directory / AWS_PROVIDER).is_dir():
        pytest.fail(
            f"no hashicorp/aws provider under {directory / AWS_PROVIDER} "
            f"(the Terraform plugin directory: {PLUGIN_DIR_VARIABLE}, "
            f"default {DEFAULT_PLUGIN_DIR}). "
            "Fill one on a machine with internet access: `terraform -chdir=terraform/examples/aws "
            f"providers mirror <dir>`, then set {PLUGIN_DIR_VARIABLE}=<dir>",
            pytrace=False,
        )
    return directory


def checkov_binary(path: Path = CHECKOV) -> Path:
    """checkov from its own locked environment, or a failure saying how to install it."""
    if not os.access(path, os.X_OK):
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        pytest.fail(
            f"checkov not found at {shown}: "
            "install it with `make terraform-checks` (part of `make install`)",
            pytrace=False,
        )
    return path


def _copy_ignoring(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n in {".terraform", ".terraform.lock.hcl"} or ".tfstate" in n}
    if Path(directory) == TERRAFORM_ROOT:
        # checkov's virtual environment: hundreds of megabytes and no Terraform.
        ignored.add("checks")
    return ignored


class Workspace:
    """A copy of terraform/ where Terraform may write what it likes."""

    def __init__(self, root: Path) -> None:
        self.terraform = terraform_binary()
        self.plugin_dir = plugin_dir()
        self.root = root / "terraform"
        shutil.copytree(TERRAFORM_ROOT, self.root, ignore=_copy_ignoring)
        self._data = root / "data"
        # An empty CLI configuration: no credentials, plugin cache or mirrors of the developer's.
        self._cli_config = root / "terraformrc"
        self._cli_config.write_text("")
        self._initialised: set[str] = set()

    def environment(self, configuration: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
        return env | {
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            # No call to checkpoint.hashicorp.com for version news: the tests run offline.
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": str(self._cli_config),
            "TF_DATA_DIR": str(self._data / configuration.replace("/", "-")),
        }

    def run(self, configuration: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`terraform <args>` in one configuration of the copy; the caller judges the result."""
        return subprocess.run(
            [self.terraform, *args],
            cwd=self.root / configuration,
            env=self.environment(configuration),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def init(self, configuration: str) -> None:
        """`terraform init` once per configuration, offline, failing the test with its output."""
        if configuration in self._initialised:
            return
        result = self.run(
            configuration,
            "init",
            "-backend=false",
            f"-plugin-dir={self.plugin_dir}",
            "-no-color",
        )
        if result.returncode != 0:
            pytest.fail(f"terraform init in {configuration} failed:\n{explain(result)}")
        self._initialised.add(configuration)

    def test_json(self, configuration: str, *args: str) -> Iterator[dict[str, Any]]:
        """The JSON messages of `terraform test -json <args>` (after init)."""
        self.init(configuration)
        result = self.run(configuration, "test", "-json", "-no-color", *args)
        messages = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0:
            errors = [m["@message"] for m in messages if m.get("@level") == "error"]
            pytest.fail(
                f"terraform test {' '.join(args)} in {configuration} failed:\n"
                + "\n".join(errors or [result.stderr])
            )
        return iter(messages)


def explain(result: subprocess.CompletedProcess[str]) -> str:
    """A failed command's own words, for an assertion message."""
    return f"$ {' '.join(map(str, result.args))}\n{result.stdout}\n{result.stderr}".strip()
