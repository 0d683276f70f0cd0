"""Configuration: typed defaults, a TOML file, and environment overrides.

Where a value comes from, lowest priority first:

1. the defaults declared in the dataclasses below (``config.toml`` at the
   repository root holds the same values, with comments; a test keeps them in
   step);
2. a TOML file: ``VESTIGE_CONFIG`` if set, else ``./config.toml`` if present;
3. ``VESTIGE_<SECTION>__<KEY>`` environment variables, one key each;
4. ``VESTIGE_DATA_DIR`` for the data directory.

Parsing is strict: an unknown section or key, or a value of the wrong type,
stops start-up with a :class:`~vestige.core.errors.ConfigError` that names it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, get_type_hints

from vestige.core.errors import ConfigError

ENV_PREFIX = "VESTIGE_"


@dataclass(frozen=True)
class VestigeSection:
    #: Every piece of state (database, evidence store, model artifacts, reports)
    #: lives under this folder. Relative paths are taken from the working directory.
    data_dir: str = "var"
    #: Who custody events name when a command has neither ``--by`` nor ``VESTIGE_ACTOR``: for automation
    #: (e.g. "nightly store check"). Empty: such a command stops and asks who is acting.
    default_actor: str = ""


@dataclass(frozen=True)
class DatabaseSection:
    #: SQLAlchemy URL. Empty means SQLite at ``<data_dir>/vestige.db``.
    url: str = ""
    #: Seconds a SQLite writer waits for a lock before giving up.
    sqlite_busy_timeout: float = 30.0
    echo: bool = False


@dataclass(frozen=True)
class StoreSection:
    #: ``local`` (a folder) or ``s3`` (any S3-compatible object store).
    backend: str = "local"
    #: Folder of the local backend. Empty means ``<data_dir>/blobs``.
    path: str = ""
    #: The s3 backend's bucket, endpoint (empty: AWS), region and key prefix.
    #: Credentials are never configuration: boto3 reads them from the environment.
    bucket: str = ""
    endpoint_url: str = ""
    region: str = ""
    prefix: str = ""


@dataclass(frozen=True)
class IngestSection:
    max_file_bytes: int = 100 * 2**20
    #: Decompression-bomb guard, checked from the header before any decoding.
    max_pixels: int = 100_000_000
    #: Decoded size of the first frame (pixels × bits per pixel), checked from the header before any decoding.
    max_decoded_bytes: int = 256 * 2**20
    archive_max_members: int = 10_000
    archive_max_member_bytes: int = 100 * 2**20
    archive_max_total_bytes: int = 2 * 2**30
    #: pHash Hamming distance up to which two images are recorded as near-duplicates.
    near_duplicate_radius: int = 8
    #: Images written to the database per transaction.
    batch_size: int = 64


@dataclass(frozen=True)
class PluginsSection:
    #: Plugin names to load; empty loads every installed plugin.
    #: ``VESTIGE_PLUGINS`` (comma-separated) overrides it.
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobsSection:
    #: Celery broker. Empty means the embedded broker in ``<data_dir>/broker.db``.
    broker_url: str = ""
    #: Optional, for monitoring tools only: results are written to the database.
    result_backend: str = ""
    #: Queues workers may consume; detectors are routed to ``gpu`` or ``cpu`` by their device.
    queues: tuple[str, ...] = ("gpu", "cpu")
    images_per_task: int = 128
    #: Times a task is retried after a worker was lost or an infrastructure error.
    max_retries: int = 3
    #: Seconds before Redis hands an unacknowledged task to another worker;
    #: longer than the slowest task, or the task runs twice (harmless, wasted).
    visibility_timeout: int = 3600
    #: Prefix of every broker key on Redis, so several labs share one server.
    key_prefix: str = ""
    #: A worker whose heartbeat (in the database) is older than this is lost: the tasks it was running are
    #: queued again by the other workers, whatever the broker (Redis would wait visibility_timeout).
    lost_worker_seconds: int = 30
    #: Threads decoding a task's images of 128×128 pixels or more on average (Pillow releases the GIL while it
    #: decodes; smaller ones decode faster on one); the order and the inputs are the same as with one.
    decode_threads: int = 4


@dataclass(frozen=True)
class WebSection:
    max_upload_bytes: int = 512 * 2**20
    #: Secret for session cookies. Never put it in a file in the repository:
    #: set ``VESTIGE_WEB__SECRET_KEY``. Empty makes one per data directory.
    secret_key: str = ""
    #: How many reverse proxies in front of the app append to X-Forwarded-For. 0: the header is ignored and
    #: the connection's address is the client's (the login limiter counts per address).
    trusted_proxies: int = 0


@dataclass(frozen=True)
class ProvenanceSection:
    #: PEM file of the root certificates whose C2PA signers the lab trusts.
    #: Empty: no signer is trusted, so no manifest can make a verdict ``real``.
    trust_anchors: str = ""


@dataclass(frozen=True)
class LoggingSection:
    #: Vestige's own log lines from this level up (DEBUG, INFO, WARNING, ERROR); other libraries' from WARNING.
    #: The command line logs warnings only unless given --verbose.
    level: str = "INFO"
    #: ``text`` (one readable line each) or ``json`` (one JSON object per line, for a log collector).
    format: str = "text"


@dataclass(frozen=True)
class TilesSection:
    #: Most tiles per image and detector when an image larger than a detector's input is judged tile by tile
    #: (docs/tiles.md); a larger grid is thinned to an evenly spaced sub-grid. docs/benchmarks.md times it.
    max_tiles: int = 256


@dataclass(frozen=True)
class Config:
    vestige: VestigeSection = field(default_factory=VestigeSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    store: StoreSection = field(default_factory=StoreSection)
    ingest: IngestSection = field(default_factory=IngestSection)
    plugins: PluginsSection = field(default_factory=PluginsSection)
    jobs: JobsSection = field(default_factory=JobsSection)
    web: WebSection = field(default_factory=WebSection)
    provenance: ProvenanceSection = field(default_factory=ProvenanceSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    tiles: TilesSection = field(default_factory=TilesSection)
    #: The file the values were read from, if any.
    source: str | None = None

    @property
    def data_dir(self) -> Path:
        return Path(self.vestige.data_dir).expanduser().resolve()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'vestige.db'}"

    @property
    def store_path(self) -> Path:
        return Path(self.store.path).expanduser().resolve() if self.store.path else self.data_dir / "blobs"


_SECTIONS: dict[str, type] = {
    f.name: f.type if isinstance(f.type, type) else get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name != "source"
}

_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("store", "backend"): ("local", "s3"),
    ("logging", "level"): ("DEBUG", "INFO", "WARNING", "ERROR"),
    ("logging", "format"): ("text", "json"),
}

_POSITIVE = {
    ("ingest", k)
    for k in (
        "max_file_bytes",
        "max_pixels",
        "max_decoded_bytes",
        "archive_max_members",
        "archive_max_member_bytes",
        "archive_max_total_bytes",
        "batch_size",
    )
} | {("tiles", "max_tiles"), ("jobs", "images_per_task"), ("jobs", "visibility_timeout"), ("jobs", "lost_worker_seconds"),
     ("jobs", "decode_threads"),
     ("web", "max_upload_bytes")}


def _coerce(section: str, key: str, kind: Any, value: Any, *, from_env: bool) -> Any:
    """Check ``value`` against the declared type; environment strings are parsed first."""
    where = f"{section}.{key}"
    if from_env and isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"configuration key {where} must be true or false, not {value!r}")
        if kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                raise ConfigError(f"configuration key {where} must be a number, not {value!r}") from None
        # tuples: JSON list or comma-separated words
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ConfigError(f"configuration key {where} is not a valid JSON list: {value!r}") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"configuration key {where} must be true or false, not {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"configuration key {where} must be an integer, not {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"configuration key {where} must be a number, not {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"configuration key {where} must be a string, not {value!r}")
        return value
    # tuple[str, ...]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"configuration key {where} must be a list of strings, not {value!r}")
    return tuple(value)


def _build_section(name: str, cls: type, values: Mapping[str, Any], env_keys: set[str]) -> Any:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(f"unknown configuration key {name}.{key}; keys of [{name}] are: {known}")
        kind = hints[key]
        if kind not in (bool, int, float, str):
            kind = tuple
        value = _coerce(name, key, kind, value, from_env=key in env_keys)
        if (name, key) in _CHOICES and value not in _CHOICES[(name, key)]:
            allowed = ", ".join(_CHOICES[(name, key)])
            raise ConfigError(f"configuration key {name}.{key} must be one of {allowed}, not {value!r}")
        if (name, key) in _POSITIVE and value <= 0:
            raise ConfigError(f"configuration key {name}.{key} must be positive, not {value!r}")
        if (name, key) == ("web", "trusted_proxies") and not 0 <= value <= 10:
            raise ConfigError(f"configuration key {name}.{key} must be between 0 and 10, not {value!r}")
        if (name, key) == ("ingest", "near_duplicate_radius") and not 0 <= value <= 16:
            raise ConfigError(f"configuration key {name}.{key} must be between 0 and 16, not {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist (named by VESTIGE_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror}") from None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(f"environment variable {name} names unknown section [{section}]; sections are: {known}")
        overrides.setdefault(section, {})[key] = value
    return overrides


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the configuration as described in the module docstring."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get("VESTIGE_CONFIG"):
        path = environ["VESTIGE_CONFIG"]
    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    data: dict[str, Any] = _read_file(Path(path)) if path is not None else {}

    for section, values in data.items():
        if section not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(f"unknown configuration section [{section}]; sections are: {known}")
        if not isinstance(values, dict):
            raise ConfigError(f"configuration entry {section} must be a [{section}] table")

    env = _env_overrides(environ)
    if environ.get("VESTIGE_DATA_DIR"):
        env.setdefault("vestige", {})["data_dir"] = environ["VESTIGE_DATA_DIR"]
    if "VESTIGE_PLUGINS" in environ:
        env.setdefault("plugins", {})["allow"] = environ["VESTIGE_PLUGINS"]

    sections = {}
    for name, cls in _SECTIONS.items():
        values = dict(data.get(name, {}))
        values.update(env.get(name, {}))
        sections[name] = _build_section(name, cls, values, set(env.get(name, {})))
    return Config(**sections, source=str(Path(path).resolve()) if path is not None else None)


def _mask_url_password(url: str) -> str:
    """``scheme://user:secret@host`` becomes ``scheme://user:********@host``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:********@{host}"


def config_as_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The effective values, secrets masked, for reports and ``vestige config``."""
    out: dict[str, dict[str, Any]] = {}
    for name in _SECTIONS:
        section = dataclasses.asdict(getattr(config, name))
        if section.get("secret_key"):
            section["secret_key"] = "********"
        for key in ("url", "broker_url", "result_backend"):
            if section.get(key):
                section[key] = _mask_url_password(section[key])
        out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
    return out
