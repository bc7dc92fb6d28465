"""terraform/: every module and example is formatted, laid out the standard way, initialises
offline with the AWS provider from the local plugin directory, validates, passes its own
`terraform test` files (mock_provider "aws"), and checkov finds no failed check. Nothing is
written into the checkout (terraform_cli.Workspace). A missing terraform, plugin directory or
checkov fails, naming it."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

from .terraform_cli import (
    PLUGIN_DIR_VARIABLE,
    REPO_ROOT,
    TERRAFORM_ROOT,
    Workspace,
    checkov_binary,
    configurations,
    explain,
    plugin_dir,
    terraform_binary,
)

# One xdist worker runs Terraform: the workspace is set up once, and the runs do not compete.
pytestmark = pytest.mark.xdist_group("terraform")

CONFIGURATIONS = configurations()
LAYOUT = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
# `#checkov:skip=CKV_AWS_123:why` — the reason is what a reviewer reads.
SKIP_COMMENT = re.compile(r"checkov:skip=(?P<check>[^:\s]*)(?::(?P<reason>.*))?")
CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("terraform"))


# Strings as Terraform means them (python-hcl2 8 keeps their quotes by default), no comments.
_PLAIN = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False)


def parsed(configuration: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each .tf file of a configuration, parsed (python-hcl2)."""
    for path in sorted((TERRAFORM_ROOT / configuration).glob("*.tf")):
        with path.open() as handle:
            yield path, hcl2.load(handle, serialization_options=_PLAIN)


def attribute(block: dict[str, Any], name: str) -> Any:
    """An attribute's value: python-hcl2 8 wraps each in a one-element list, 7 does not."""
    value = block.get(name)
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def test_the_checks_cover_every_module_and_the_example() -> None:
    modules = {"network", "cluster", "gpu-capacity", "data", "identity"}
    assert {f"modules/{m}" for m in modules} | {"examples/aws"} <= set(CONFIGURATIONS)


def test_terraform_files_are_formatted(workspace: Workspace) -> None:
    result = workspace.run(".", "fmt", "-check", "-recursive", "-diff", "-no-color")
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform/`:\n{explain(result)}"


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_each_configuration_has_the_standard_layout_and_tests(configuration: str) -> None:
    directory = TERRAFORM_ROOT / configuration
    assert [name for name in LAYOUT if not (directory / name).is_file()] == []
    tests = sorted((directory / "tests").glob("*.tftest.hcl"))
    assert tests != [], f"{configuration} has no tests/*.tftest.hcl"
    # Offline, every test mocks AWS: a test without it would try to reach an account.
    for test in tests:
        assert re.search(r'^mock_provider\s+"aws"', test.read_text(), re.M), test.name


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_each_variable_is_typed_and_described_and_each_output_described(
    configuration: str,
) -> None:
    undocumented: list[str] = []
    for path, body in parsed(configuration):
        for block in body.get("variable", []):
            for name, spec in block.items():
                missing = [key for key in ("type", "description") if not attribute(spec, key)]
                undocumented += [f"{path.name}: variable {name} lacks {m}" for m in missing]
        for block in body.get("output", []):
            for name, spec in block.items():
                if not attribute(spec, "description"):
                    undocumented.append(f"{path.name}: output {name} lacks description")
    assert undocumented == []


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_each_configuration_pins_terraform_and_the_aws_provider(configuration: str) -> None:
    settings = [block for _, body in parsed(configuration) for block in body.get("terraform", [])]
    assert len(settings) == 1, f"{configuration}: one terraform block (versions.tf)"
    assert attribute(settings[0], "required_version") == ">= 1.9"
    providers = {
        name: attribute({name: spec}, name)
        for entry in settings[0]["required_providers"]
        for name, spec in entry.items()
        if not name.startswith("__")
    }
    # Only hashicorp/aws exists offline (no random, tls, kubernetes or helm provider).
    assert providers.keys() == {"aws"}
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert providers["aws"]["version"].startswith("~> ")


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_each_configuration_initialises_offline_and_validates(
    workspace: Workspace, configuration: str
) -> None:
    workspace.init(configuration)
    result = workspace.run(configuration, "validate", "-json", "-no-color")
    report = json.loads(result.stdout)
    diagnostics = [
        f"{d['severity']}: {d['summary']} ({d.get('range', {}).get('filename', '')}) "
        f"{d.get('detail', '')}"
        for d in report["diagnostics"]
    ]
    # Warnings too: a deprecated attribute is an error waiting for the next provider release.
    assert diagnostics == [], "\n".join(diagnostics)
    assert report["valid"]


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_each_configurations_terraform_tests_pass(workspace: Workspace, configuration: str) -> None:
    messages = list(workspace.test_json(configuration))
    summary = [m["test_summary"] for m in messages if m.get("type") == "test_summary"]
    assert len(summary) == 1, messages
    assert summary[0]["status"] == "pass", summary[0]
    # A file whose run blocks were all skipped would "pass": every run must have run.
    runs = [m["test_run"] for m in messages if m.get("type") == "test_run"]
    finished = [run for run in runs if run.get("progress") == "complete"]
    assert finished != []
    assert {run["status"] for run in finished} == {"pass"}, finished


def checkov_report(workspace: Workspace) -> list[dict[str, Any]]:
    """checkov's JSON report over the workspace's terraform/ (one entry per framework)."""
    command = [
        str(checkov_binary()),
        "--directory",
        str(workspace.root),
        "--framework",
        "terraform",
        "--output",
        "json",
        # Offline: no Prisma Cloud guidelines, no registry modules.
        "--skip-download",
        "--download-external-modules",
        "false",
    ]
    result = subprocess.run(
        command, cwd=workspace.root, capture_output=True, text=True, timeout=600, check=False
    )
    # checkov exits 1 when a check fails; the report says which.
    assert result.returncode in (0, 1), explain(result)
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


def test_checkov_finds_no_failed_check(workspace: Workspace) -> None:
    reports = checkov_report(workspace)
    results = [report["results"] for report in reports if "results" in report]
    assert results != [], f"checkov scanned no Terraform resource: {reports}"
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}:"
        f"{check['file_line_range'][0]}): {check['check_name']}"
        for result in results
        for check in result["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert [error for result in results for error in result.get("parsing_errors", [])] == []
    passed = sum(len(result["passed_checks"]) for result in results)
    assert passed > 0


def test_every_checkov_skip_names_a_check_and_gives_its_reason() -> None:
    unjustified = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for configuration in CONFIGURATIONS
        for path in sorted((TERRAFORM_ROOT / configuration).rglob("*.tf"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        for match in [SKIP_COMMENT.search(line)]
        if match
        and not (
            CHECK_ID.match(match["check"]) and match["reason"] and len(match["reason"].strip()) > 10
        )
    ]
    assert unjustified == []


def test_without_terraform_on_path_the_checks_fail_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"terraform not found on PATH: install"):
        terraform_binary()


def test_without_the_plugin_directory_the_checks_fail_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PLUGIN_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=rf"{PLUGIN_DIR_VARIABLE}.*providers mirror"):
        plugin_dir()


def test_without_checkovs_environment_the_checks_fail_naming_make_terraform_checks(
    tmp_path: Path,
) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"checkov not found .*make terraform-checks"):
        checkov_binary(tmp_path / "checkov")
