"""Key resolution: strict in prod, generated once and kept (0600) locally, ids that reveal nothing."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from ingest_platform.privacy import keys as keys_module
from ingest_platform.privacy.keys import (
    KEY_FILE_NAME,
    KEY_SETTING,
    KeyMaterial,
    PrivacyKeyError,
    derive_key_id,
    resolve_key,
)

KEY_BYTES = bytes(range(7, 39))  # 32 bytes, all distinct
GOOD = "hex:" + KEY_BYTES.hex()


@pytest.mark.parametrize(
    "secret",
    [None, "", "   ", "changeme", "CHANGEME", "short-key", "a" * 40, "hex:" + "00" * 32, "hex:abc"],
)
def test_prod_refuses_missing_short_default_or_weak_keys_naming_the_setting(
    secret: str | None, tmp_path: Path
) -> None:
    with pytest.raises(PrivacyKeyError, match=KEY_SETTING):
        resolve_key(secret, env="prod", instance_dir=tmp_path)
    assert not (tmp_path / KEY_FILE_NAME).exists()  # never silently generated in prod


def test_prod_accepts_a_strong_key_in_any_encoding(tmp_path: Path) -> None:
    hexed = resolve_key(GOOD, env="prod", instance_dir=tmp_path)
    assert hexed.key == KEY_BYTES and hexed.source == "setting"
    raw = resolve_key("a-long-random-passphrase-with-entropy-42!", env="prod", instance_dir=tmp_path)
    assert raw.key == b"a-long-random-passphrase-with-entropy-42!"
    b64 = resolve_key("base64:" + base64.b64encode(KEY_BYTES).decode(), env="prod", instance_dir=tmp_path)
    assert b64.key == KEY_BYTES


def test_local_generates_once_with_0600_and_reuses(tmp_path: Path) -> None:
    first = resolve_key(None, env="local", instance_dir=tmp_path / "instance")
    path = tmp_path / "instance" / KEY_FILE_NAME
    assert first.source == "generated" and len(first.key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = resolve_key(None, env="local", instance_dir=tmp_path / "instance")
    assert second.key == first.key and second.key_id == first.key_id and second.source == "file"


def test_generated_key_is_0600_and_a_created_directory_0700_even_under_a_permissive_umask(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "new" / "instance"
    previous = os.umask(0)
    try:
        resolve_key(None, env="local", instance_dir=instance)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((instance / KEY_FILE_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert sorted(p.name for p in instance.iterdir()) == [KEY_FILE_NAME]  # no temporary file left


def test_a_failed_write_leaves_no_partial_key_file_and_the_next_start_generates_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Disk full half-way: the key file's name must never point at a partial key, or every later
    # start fails on a corrupt file (and two processes could each use a different key).
    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keys_module.os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        resolve_key(None, env="local", instance_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    material = resolve_key(None, env="local", instance_dir=tmp_path)
    assert material.source == "generated"
    assert bytes.fromhex((tmp_path / KEY_FILE_NAME).read_text().strip()) == material.key


def test_two_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: resolve_key(None, env="local", instance_dir=tmp_path).key, range(16)))
    assert len(keys) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE_NAME]


def test_local_key_file_permissions_are_tightened(tmp_path: Path) -> None:
    resolve_key(None, env="local", instance_dir=tmp_path)
    path = tmp_path / KEY_FILE_NAME
    path.chmod(0o644)
    resolve_key(None, env="local", instance_dir=tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_local_accepts_a_weak_configured_key_but_prefers_it_over_the_file(tmp_path: Path) -> None:
    material = resolve_key("dev", env="local", instance_dir=tmp_path)
    assert material.key == b"dev" and material.source == "setting"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_corrupt_key_file_is_an_explained_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("not hex")
    with pytest.raises(PrivacyKeyError, match="delete it"):
        resolve_key(None, env="local", instance_dir=tmp_path)


def test_key_id_is_configurable_or_derived_and_reveals_nothing(tmp_path: Path) -> None:
    material = resolve_key(GOOD, env="prod", instance_dir=tmp_path)
    assert material.key_id == derive_key_id(material.key)
    assert material.key_id.startswith("k") and len(material.key_id) == 9
    assert material.key.hex()[:8] not in material.key_id
    assert derive_key_id(b"x" * 32) != derive_key_id(b"y" * 32)
    named = resolve_key(GOOD, env="prod", instance_dir=tmp_path, key_id="2026-q1")
    assert named.key_id == "2026-q1"


def test_key_material_repr_hides_the_key() -> None:
    material = KeyMaterial(key=b"super-secret-key-material-123456", key_id="k1")
    assert "super-secret" not in repr(material) and "k1" in repr(material)
