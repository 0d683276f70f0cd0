from pathlib import Path

import pytest

from vestige.core.config import Config, config_as_dict, load_config
from vestige.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_repository_config_is_the_code_defaults():
    # config.toml documents the defaults; the dataclasses enforce them. Keep them equal.
    config = load_config(path=ROOT / "config.toml", environ={})
    assert config_as_dict(config) == config_as_dict(Config())


def test_without_a_file_the_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.source is None
    assert config.data_dir == tmp_path / "var"
    assert config.database_url == f"sqlite:///{tmp_path / 'var' / 'vestige.db'}"
    assert config.store_path == tmp_path / "var" / "blobs"


def test_vestige_config_names_the_file(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text('[ingest]\nnear_duplicate_radius = 4\n[database]\nurl = "postgresql+psycopg://lab@db/vestige"\n')
    config = load_config(environ={"VESTIGE_CONFIG": str(path)})
    assert config.ingest.near_duplicate_radius == 4
    assert config.database_url == "postgresql+psycopg://lab@db/vestige"
    assert config.source == str(path)


@pytest.mark.parametrize(
    ("environ", "attribute", "expected"),
    [
        ({"VESTIGE_INGEST__MAX_PIXELS": "1000"}, ("ingest", "max_pixels"), 1000),
        ({"VESTIGE_DATABASE__ECHO": "yes"}, ("database", "echo"), True),
        ({"VESTIGE_DATABASE__SQLITE_BUSY_TIMEOUT": "2.5"}, ("database", "sqlite_busy_timeout"), 2.5),
        ({"VESTIGE_JOBS__QUEUES": "gpu, cpu, io"}, ("jobs", "queues"), ("gpu", "cpu", "io")),
        ({"VESTIGE_JOBS__QUEUES": '["a"]'}, ("jobs", "queues"), ("a",)),
        ({"VESTIGE_PLUGINS": "metadata,example"}, ("plugins", "allow"), ("metadata", "example")),
        ({"VESTIGE_DATA_DIR": "/srv/lab"}, ("vestige", "data_dir"), "/srv/lab"),
        ({"VESTIGE_PROVENANCE__TRUST_ANCHORS": "/etc/lab/c2pa-roots.pem"}, ("provenance", "trust_anchors"),
         "/etc/lab/c2pa-roots.pem"),
    ],
)
def test_environment_overrides_single_keys(environ, attribute, expected):
    config = load_config(path=ROOT / "config.toml", environ=environ)
    section, key = attribute
    assert getattr(getattr(config, section), key) == expected


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        ("[ingest]\nmax_pixel = 5\n", {}, "unknown configuration key ingest.max_pixel"),
        ("[injest]\n", {}, "unknown configuration section [injest]"),
        ("[ingest]\nmax_pixels = 'many'\n", {}, "ingest.max_pixels must be an integer"),
        ("[ingest]\nmax_pixels = -1\n", {}, "ingest.max_pixels must be positive"),
        ("[ingest]\nnear_duplicate_radius = 40\n", {}, "ingest.near_duplicate_radius must be between 0 and 16"),
        ("[store]\nbackend = 'ftp'\n", {}, "store.backend must be one of local"),
        ("[database]\necho = 1\n", {}, "database.echo must be true or false"),
        ("[jobs]\nqueues = 'gpu'\n", {}, "jobs.queues must be a list of strings"),
        ("ingest = 3\n", {}, "configuration entry ingest must be a [ingest] table"),
        ("[ingest\n", {}, "is not valid TOML"),
        ("", {"VESTIGE_INGEST__MAX_PIXELS": "lots"}, "ingest.max_pixels must be a number"),
        ("", {"VESTIGE_DATABASE__ECHO": "maybe"}, "database.echo must be true or false"),
        ("", {"VESTIGE_INGEST__NOPE": "1"}, "unknown configuration key ingest.nope"),
        ("", {"VESTIGE_NOWHERE__KEY": "1"}, "VESTIGE_NOWHERE__KEY names unknown section [nowhere]"),
    ],
)
def test_wrong_configuration_stops_with_a_message_naming_it(tmp_path, toml, environ, message):
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path=path, environ=environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"VESTIGE_CONFIG": str(tmp_path / "nope.toml")})


def test_secrets_are_masked_when_shown():
    config = load_config(environ={"VESTIGE_WEB__SECRET_KEY": "hunter2"})
    assert config.web.secret_key == "hunter2"
    assert "hunter2" not in str(config_as_dict(config))


@pytest.mark.parametrize(
    ("variable", "url", "shown"),
    [
        ("VESTIGE_DATABASE__URL", "postgresql+psycopg://lab:s3cret@db/vestige", "postgresql+psycopg://lab:********@db/vestige"),
        ("VESTIGE_JOBS__BROKER_URL", "redis://:s3cret@queue:6379/0", "redis://:********@queue:6379/0"),
        ("VESTIGE_JOBS__BROKER_URL", "amqp://lab:s3cret@mq:5672//", "amqp://lab:********@mq:5672//"),
        ("VESTIGE_DATABASE__URL", "postgresql+psycopg://lab@db/vestige", "postgresql+psycopg://lab@db/vestige"),
    ],
)
def test_passwords_in_urls_are_masked_when_shown(variable, url, shown):
    section, key = variable[len("VESTIGE_"):].lower().split("__")
    shown_config = config_as_dict(load_config(environ={variable: url}))
    assert shown_config[section][key] == shown
    assert "s3cret" not in str(shown_config)


def test_cli_reports_a_bad_key_in_one_line(vestige, tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest]\nmax_pixel = 5\n")
    monkeypatch.setenv("VESTIGE_CONFIG", str(bad))
    from click.testing import CliRunner

    from vestige.cli import main

    with CliRunner().isolation(env={"VESTIGE_CONFIG": str(bad)}) as streams:
        with pytest.raises(SystemExit) as exit_info:
            main(["case", "list"])
        err = streams[1].getvalue().decode()
    assert exit_info.value.code == 1
    assert err.strip() == "error: unknown configuration key ingest.max_pixel; keys of [ingest] are: " + ", ".join(
        sorted(
            [
                "archive_max_member_bytes", "archive_max_members", "archive_max_total_bytes", "batch_size",
                "max_decoded_bytes", "max_file_bytes", "max_pixels", "near_duplicate_radius",
            ]
        )
    )
