"""The commands as an operator meets them without a server: help, bad files, missing settings, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamtune_cli.app import app
from typer.testing import CliRunner

runner = CliRunner()
NO_SERVER = {"STREAMTUNE_REDIS_URL": "redis://127.0.0.1:9/0", "STREAMTUNE_S3_ENDPOINT": "127.0.0.1:9",
             "STREAMTUNE_S3_ACCESS_KEY": "k", "STREAMTUNE_S3_SECRET_KEY": "s"}


@pytest.mark.parametrize("command", [[], ["models"], ["datasets"], ["dlq"], ["produce"], ["train"], ["status"],
                                     ["tail"], ["models", "show"], ["datasets", "import"], ["dlq", "replay"]])
def test_every_command_explains_itself(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: streamtune {' '.join(command)}".rstrip() in result.output


def test_the_groups_list_their_commands() -> None:
    assert all(name in runner.invoke(app, ["--help"]).output
               for name in ("produce", "tail", "train", "status", "models", "datasets", "dlq"))
    assert all(name in runner.invoke(app, ["dlq", "--help"]).output for name in ("list", "show", "replay"))
    assert all(name in runner.invoke(app, ["models", "--help"]).output for name in ("list", "show"))


def test_produce_refuses_a_file_of_another_kind(tmp_path: Path) -> None:
    file = tmp_path / "events.txt"
    file.write_text("{}\n")
    result = runner.invoke(app, ["produce", str(file)], env=NO_SERVER)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: events.txt: expected a .jsonl, .ndjson or .csv file"


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["produce", str(tmp_path / "missing.jsonl")], env=NO_SERVER)
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_import_lists_bad_lines_and_stores_nothing(tmp_path: Path) -> None:
    file = tmp_path / "corpus.jsonl"
    file.write_text('{"text": "Fever and cough", "label": ["O", "O", "O"]}\n'
                    '{"text": "two words", "label": ["O"]}\n'
                    "not json\n")
    result = runner.invoke(app, ["datasets", "import", str(file), "--dataset", "notes"], env=NO_SERVER)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("note: import bypasses ingestion and the anonymizer")
    assert lines[1] == "line 2: label: 1 tags for 2 whitespace tokens of text"
    assert lines[2].startswith("line 3: not JSON")
    assert lines[-1] == "error: 2 bad lines in corpus.jsonl; nothing imported"


def test_missing_credentials_are_one_line_naming_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .stack/env here
    for name in ("STREAMTUNE_S3_ACCESS_KEY", "STREAMTUNE_S3_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["models", "list"], env={"STREAMTUNE_S3_ACCESS_KEY": None,
                                                         "STREAMTUNE_S3_SECRET_KEY": None})
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: missing STREAMTUNE_S3_ACCESS_KEY, STREAMTUNE_S3_SECRET_KEY (set them in the environment or run "
        "where .stack/env is)"]


def test_settings_come_from_stack_env_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamtune_cli.connection import load_settings

    (tmp_path / ".stack").mkdir()
    (tmp_path / ".stack" / "env").write_text("export STREAMTUNE_S3_ACCESS_KEY=from-file\n"
                                             "export STREAMTUNE_S3_SECRET_KEY=file-secret\n"
                                             "export STREAMTUNE_S3_BUCKET=file-bucket\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAMTUNE_S3_BUCKET", "env-bucket")
    monkeypatch.delenv("STREAMTUNE_S3_ACCESS_KEY", raising=False)
    settings = load_settings()
    assert settings.s3_access_key.get_secret_value() == "from-file"
    assert settings.s3_bucket == "env-bucket"


def test_an_unknown_stream_is_refused_at_once() -> None:
    result = runner.invoke(app, ["tail", "events.rwa"], env=NO_SERVER)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown stream 'events.rwa'; one of: events.raw,")


def test_a_bad_train_request_is_refused_before_anything_is_sent() -> None:
    result = runner.invoke(app, ["train", "--model", "ner", "--task", "summarize", "--dataset", "notes"], env=NO_SERVER)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid training request: task:")
