"""The admin guides (English and Dutch) against the code: command help, parameters, error codes, links."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.clihelp import working_directory
from tools import cli_reference
from tools.cli_reference import CommandHelp, blocks_in, command_helps, refresh
from wicbox_bridge.cli import cli
from wicbox_bridge.config.params import PARAMETER_SPECS, ParameterSpec
from wicbox_bridge.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
GUIDES = {"en": ROOT / "docs" / "admin-guide.md", "nl": ROOT / "docs" / "nl" / "admin-guide.md"}
NO_DEFAULT = "—"
HELPS = command_helps()
HELP_IDS = [entry.path for entry in HELPS]


def guide(language: str) -> str:
    return GUIDES[language].read_text(encoding="utf-8")


def section(text: str, name: str) -> str:
    """The text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (exactly one of each)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert text.count(start) == 1, f"{start} must appear once"
    assert text.count(end) == 1, f"{end} must appear once"
    return text.split(start, 1)[1].split(end, 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row; header rows (those above a separator) left out."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        if re.fullmatch(r"\|[\s|:-]+\|", line.strip()):
            rows.pop()  # the header of this table
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


# --------------------------------------------------------------------------- command help


@pytest.mark.parametrize("entry", HELPS, ids=HELP_IDS)
def test_every_command_option_and_argument_is_explained(entry: CommandHelp) -> None:
    command = entry.command
    assert (command.help or "").strip(), f"{entry.path} has no help text (docstring)"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{entry.path} {param.opts[0]} has no help"
        if isinstance(param, click.Argument):
            name = (param.name or "").upper()
            assert re.search(rf"\b{name}\b", command.help or ""), (
                f"{entry.path}: the help never explains {name}"
            )


def test_the_tree_has_the_commands_the_guide_documents() -> None:
    assert {"wicbox", "wicbox run", "wicbox check", "wicbox params set", "wicbox db init"} <= set(HELP_IDS)


@pytest.mark.parametrize("entry", HELPS, ids=HELP_IDS)
def test_generated_help_is_what_help_prints(entry: CommandHelp, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"WICBOX_HOME": str(tmp_path / "home"), "WICBOX_CONFIG": None}
    with working_directory(tmp_path):
        result = runner.invoke(
            cli,
            [*entry.path.split()[1:], "--help"],
            prog_name="wicbox",
            terminal_width=cli_reference.HELP_WIDTH,
            env=env,
            catch_exceptions=False,
        )
    assert result.exit_code == 0
    assert result.output == entry.text


@pytest.mark.parametrize("language", GUIDES)
@pytest.mark.parametrize("entry", HELPS, ids=HELP_IDS)
def test_guide_shows_the_current_help_of_every_command(language: str, entry: CommandHelp) -> None:
    blocks = blocks_in(guide(language))
    assert entry.path in blocks, (
        f"no help block for `{entry.path}`: run python -m tools.cli_reference --write"
    )
    assert blocks[entry.path] == entry.text, (
        f"`{entry.path}` is out of date: run python -m tools.cli_reference --write"
    )


@pytest.mark.parametrize("language", GUIDES)
def test_guide_has_no_blocks_for_commands_that_do_not_exist(language: str) -> None:
    text = guide(language)
    assert set(blocks_in(text)) <= set(HELP_IDS)
    assert text.count("<!-- wicbox-help:") == len(blocks_in(text)), "a marker without a ```text block"
    result = refresh(text, HELPS)
    assert (result.text == text, result.removed) == (True, ())


# --------------------------------------------------------------------------- the generator


def _tiny_tree() -> click.Group:
    @click.group("tool")
    def tool() -> None:
        """A tool."""

    @tool.command("keep")
    @click.option("--fast", is_flag=True, help="Go fast.")
    def keep(fast: bool) -> None:
        """Kept command."""

    @tool.command("new")
    def new() -> None:
        """New command."""

    return tool


def _block(path: str, body: str) -> str:
    return f"<!-- wicbox-help: {path} -->\n```text\n{body}```\n"


TINY = {entry.path: entry for entry in command_helps(_tiny_tree())}


@pytest.mark.parametrize(
    ("before", "expected", "added", "removed"),
    [
        pytest.param(
            "intro\n" + _block("wicbox keep", "old\n") + "prose\n<!-- wicbox-help-end -->\n",
            "intro\n" + _block("wicbox keep", TINY["wicbox keep"].text) + "prose\n"
            "### `wicbox`\n\n" + _block("wicbox", TINY["wicbox"].text) + "\n"
            "### `wicbox new`\n\n" + _block("wicbox new", TINY["wicbox new"].text) + "\n"
            "<!-- wicbox-help-end -->\n",
            ("wicbox", "wicbox new"),
            (),
            id="refreshes an old block, adds missing ones before the end marker, keeps prose",
        ),
        pytest.param(
            _block("wicbox", "x\n")
            + _block("wicbox gone", "old\n")
            + "prose stays\n"
            + _block("wicbox keep", "")
            + _block("wicbox new", "")
            + _block("wicbox new", "twice\n"),
            _block("wicbox", TINY["wicbox"].text)
            + "prose stays\n"
            + _block("wicbox keep", TINY["wicbox keep"].text)
            + _block("wicbox new", TINY["wicbox new"].text),
            (),
            ("wicbox gone", "wicbox new"),
            id="removes blocks of vanished commands and second copies",
        ),
    ],
)
def test_refresh(before: str, expected: str, added: tuple[str, ...], removed: tuple[str, ...]) -> None:
    result = refresh(before, list(TINY.values()))
    assert (result.text, result.added, result.removed) == (expected, added, removed)
    assert refresh(result.text, list(TINY.values())).text == result.text


def test_refresh_without_end_marker_refuses_to_drop_a_new_command() -> None:
    with pytest.raises(SystemExit, match="wicbox-help-end"):
        refresh(_block("wicbox", ""), list(TINY.values()))


def test_check_fails_with_a_diff_until_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "guide.md"
    stale.write_text(
        _block("wicbox run", "Usage: wicbox run (old)\n") + "<!-- wicbox-help-end -->\n", "utf-8"
    )
    assert cli_reference.main(["--check", str(stale)]) == 1
    assert "-Usage: wicbox run (old)" in capsys.readouterr().out
    assert cli_reference.main(["--write", str(stale)]) == 0
    assert cli_reference.main(["--check", str(stale)]) == 0
    assert blocks_in(stale.read_text("utf-8")) == {entry.path: entry.text for entry in HELPS}


# --------------------------------------------------------------------------- parameters


def parameter_rows(language: str) -> dict[str, list[str]]:
    rows = table_rows(section(guide(language), "parameter-reference"))
    return {row[0].strip("`"): row for row in rows}


@pytest.mark.parametrize("language", GUIDES)
def test_parameter_reference_lists_exactly_the_registry(language: str) -> None:
    rows = parameter_rows(language)
    assert sorted(rows) == sorted(spec.name for spec in PARAMETER_SPECS)
    text = section(guide(language), "parameter-reference")
    named = set(re.findall(r"(?<![\w.])(WICBOX_\w+|WICBOX[A-Z][A-Za-z]+|ACCOUNTMODE)\b", text))
    assert named <= {spec.name for spec in PARAMETER_SPECS}, "unknown (or misspelt) names"


@pytest.mark.parametrize("language", GUIDES)
@pytest.mark.parametrize("spec", PARAMETER_SPECS, ids=[spec.name for spec in PARAMETER_SPECS])
def test_parameter_reference_states_meaning_default_and_example(language: str, spec: ParameterSpec) -> None:
    cells = parameter_rows(language)[spec.name]
    assert len(cells) == 4, f"{spec.name}: parameter | meaning | default | example"
    _, meaning, stated_default, example = cells
    assert meaning and example, f"{spec.name}: meaning and example must be filled in"
    assert stated_default.strip("`") == (NO_DEFAULT if spec.default is None else spec.default)


# --------------------------------------------------------------------------- troubleshooting


def _constants(paths: list[Path], pattern: str) -> set[str]:
    """String constants of the code that are exactly an error code (not docstrings mentioning one)."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(pattern, node.value)
            ):
                found.add(node.value)
    return found


AADSTS_CODES = sorted(_constants(sorted((ROOT / "wicbox_bridge").rglob("*.py")), r"AADSTS\d+"))
SMTP_CODES = sorted(_constants(sorted((ROOT / "adapters").glob("smtp*.py")), r"[245]\.\d{1,3}\.\d{1,3}"))


def test_the_code_maps_the_codes_the_guide_must_explain() -> None:
    assert {"AADSTS50126", "AADSTS7000218", "AADSTS65001"} <= set(AADSTS_CODES)
    assert {"5.7.139", "5.7.30", "5.7.57", "5.7.60"} <= set(SMTP_CODES)


def first_cells(language: str) -> list[str]:
    return [row[0] for row in table_rows(section(guide(language), "troubleshooting"))]


def _has_row(cells: list[str], code: str) -> bool:
    pattern = re.compile(rf"(?<![\w.]){re.escape(code)}(?![\w.])")
    return any(pattern.search(cell) for cell in cells)


@pytest.mark.parametrize("language", GUIDES)
@pytest.mark.parametrize(
    "code",
    [
        *AADSTS_CODES,
        *SMTP_CODES,
        "5.7.3",
        "SubmissionQuotaExceeded",
        *(str(int(code)) for code in ExitCode),
    ],
)
def test_troubleshooting_has_a_row_for_every_code(language: str, code: str) -> None:
    assert _has_row(first_cells(language), code), f"no troubleshooting row for {code}"


# --------------------------------------------------------------------------- structure and links


def anchors(text: str) -> list[str]:
    return re.findall(r'<a id="([^"]+)"></a>', text)


def test_both_guides_have_the_same_sections() -> None:
    assert anchors(guide("en")) == anchors(guide("nl"))
    assert len(anchors(guide("en"))) >= 10


@pytest.mark.parametrize("language", GUIDES)
def test_links_in_the_guide_lead_somewhere(language: str) -> None:
    text = guide(language)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("#"):
            assert target[1:] in anchors(text), f"no anchor {target}"
        elif "://" not in target:
            assert (GUIDES[language].parent / target.split("#")[0]).is_file(), f"broken link {target}"


def test_readme_links_both_guides() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/admin-guide.md)" in readme
    assert "(docs/nl/admin-guide.md)" in readme
