"""The lab's Ed25519 signing key: made once, kept in the data directory, never in the repository.

``vestige keys init`` writes ``<data_dir>/keys/lab-ed25519.pem`` (the private
key, mode 0600, in a 0700 folder) and ``lab-ed25519.pub.pem`` (the public key,
for anyone who verifies the lab's evidence bundles). The fingerprint of a key
is the SHA-256 of its 32 raw public bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vestige.core.config import Config
from vestige.core.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError

KEY_FOLDER = "keys"
PRIVATE_KEY_FILE = "lab-ed25519.pem"
PUBLIC_KEY_FILE = "lab-ed25519.pub.pem"


@dataclass(frozen=True)
class LabKeyFiles:
    private: Path
    public: Path

    @classmethod
    def of(cls, config: Config) -> LabKeyFiles:
        folder = config.data_dir / KEY_FOLDER
        return cls(private=folder / PRIVATE_KEY_FILE, public=folder / PUBLIC_KEY_FILE)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def init_lab_key(config: Config) -> tuple[LabKeyFiles, str]:
    """Create the lab key; refuses to replace one, since bundles signed with it could no longer be checked."""
    files = LabKeyFiles.of(config)
    if files.private.exists():
        raise ConflictError(
            f"the lab key already exists at {files.private}; move it away first if you really mean to replace it"
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        files.private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(files.private.parent, 0o700)
        fd = os.open(files.private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        files.public.write_bytes(public_key_pem(key.public_key()))
    except OSError as exc:
        raise ConfigError(f"cannot write the lab key under {files.private.parent}: {exc.strerror}") from None
    return files, fingerprint(key.public_key())


def load_signing_key(config: Config) -> Ed25519PrivateKey:
    """The lab's private key; refuses a missing key or one that others can read."""
    files = LabKeyFiles.of(config)
    try:
        mode = files.private.stat().st_mode
    except FileNotFoundError:
        raise NotFoundError(f"there is no lab signing key at {files.private}; create one with `vestige keys init`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the lab key {files.private} can be read by other users; run `chmod 600 {files.private}`")
    key = serialization.load_pem_private_key(files.private.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{files.private} is not an Ed25519 private key; create one with `vestige keys init`")
    return key


def load_lab_public_key(config: Config) -> Ed25519PublicKey:
    """The lab's public key, from its file (or derived from the private key if that file was lost)."""
    files = LabKeyFiles.of(config)
    if files.public.is_file():
        return read_public_key(files.public.read_bytes(), str(files.public))
    return load_signing_key(config).public_key()


def read_public_key(data: bytes, name: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes; ``name`` says where they came from in the error."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InvalidInputError(f"{name} is not a PEM public key; export one with `vestige keys export`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError(f"{name} is not an Ed25519 public key")
    return key


def signature_is_valid(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
