"""The raw store: where data with personal information lives, outside the warehouse.

Raw scraped posts and raw dead-letter payloads are written as parquet/JSONL under one URI: a
local directory by default, any ``pyarrow.fs`` URI (``s3://bucket/prefix``, ``gs://…``) in
production, through the same interface. One file per (dataset, partition): a rerun replaces it
atomically (write to a temporary name, then move), so reruns never duplicate. A day of TikTok
posts is sharded by target list (``date=D/list=NAME/posts.parquet``): each list's scrape run
writes only its own file, so runs of the same day on different workers never overwrite each other.

Dead letters are spooled as JSON Lines under ``dead_letters/source=S/<batch key>.jsonl``. Order
files use the batch key ``fp=<content fingerprint>``: one spool per file *content*, so the same
file name landed twice with different rows never overwrites day 1's payloads, and a rerun of the
same content rewrites the same spool (no duplicates). Spools are split on ``\n`` only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ingest_platform.models import POST_COLUMNS, DeadLetter, Post

log = logging.getLogger(__name__)

_POST_SCHEMA = pa.schema(
    [
        ("platform", pa.string()),
        ("post_id", pa.string()),
        ("description", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("author_id", pa.string()),
        ("author_handle", pa.string()),
        ("author_nickname", pa.string()),
        ("author_sec_uid", pa.string()),
        ("author_bio", pa.string()),
        ("author_verified", pa.bool_()),
        ("play_count", pa.int64()),
        ("like_count", pa.int64()),
        ("comment_count", pa.int64()),
        ("share_count", pa.int64()),
        ("collect_count", pa.int64()),
        ("hashtags", pa.list_(pa.string())),
        ("mentions", pa.list_(pa.string())),
        ("music_id", pa.string()),
        ("music_title", pa.string()),
        ("music_author", pa.string()),
        ("music_original", pa.bool_()),
        ("duration_seconds", pa.float64()),
        ("location_created", pa.string()),
        ("is_ad", pa.bool_()),
        ("is_slideshow", pa.bool_()),
        ("source_url", pa.string()),
        ("scraped_at", pa.timestamp("us", tz="UTC")),
        ("proxy_id", pa.string()),
        ("backend", pa.string()),
    ]
)
assert tuple(_POST_SCHEMA.names) == POST_COLUMNS, "raw schema must follow the Post model"


def posts_to_frame(posts: Sequence[Post]) -> pd.DataFrame:
    """Posts → a typed frame with exactly the Post columns (also when empty)."""
    rows = [post.model_dump(mode="python") for post in posts]
    table = pa.Table.from_pylist(rows, schema=_POST_SCHEMA)
    return table.to_pandas()


class RawStore:
    """Partitioned raw datasets under one filesystem URI."""

    def __init__(self, uri: str) -> None:
        if "://" not in uri:
            Path(uri).mkdir(parents=True, exist_ok=True)
            uri = str(Path(uri).resolve())
        self.uri = uri
        self._fs, self._root = pafs.FileSystem.from_uri(uri)

    def _path(self, *parts: str) -> str:
        return "/".join([self._root.rstrip("/"), *parts])

    def _atomic_write(self, path: str, write: Any) -> None:
        parent = path.rsplit("/", 1)[0]
        self._fs.create_dir(parent, recursive=True)
        temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
        write(temporary)
        # delete_file first: object stores have no rename-over, local move would also be fine.
        if self._fs.get_file_info(path).type != pafs.FileType.NotFound:
            self._fs.delete_file(path)
        self._fs.move(temporary, path)

    # --- posts ---------------------------------------------------------------------------------
    def posts_path(self, platform: str, partition_key: str, shard: str | None = None) -> str:
        """One day's posts; ``shard`` (a target list) gives each scrape run of the day its own file."""
        day = self._path("posts", f"platform={platform}", f"date={partition_key}")
        return f"{day}/list={shard}/posts.parquet" if shard else f"{day}/posts.parquet"

    def write_posts(
        self, platform: str, partition_key: str, posts: Sequence[Post], *, shard: str | None = None
    ) -> str:
        table = pa.Table.from_pandas(posts_to_frame(posts), schema=_POST_SCHEMA, preserve_index=False)
        path = self.posts_path(platform, partition_key, shard)
        self._atomic_write(path, lambda tmp: pq.write_table(table, tmp, filesystem=self._fs))
        return path

    def read_posts(self, platform: str, partition_key: str, *, shard: str | None = None) -> pd.DataFrame:
        """One shard's posts, or (``shard=None``) the whole day: the unsharded file and every shard.

        Posts found by two shards (a creator in two lists) are kept once, from the first shard in
        name order, so downstream loads see each post once.
        """
        if shard is not None:
            return self._read_file(self.posts_path(platform, partition_key, shard))
        paths = [self.posts_path(platform, partition_key), *self._shard_paths(platform, partition_key)]
        frames = [frame for frame in (self._read_file(path) for path in paths) if len(frame)]
        if not frames:
            return posts_to_frame([])
        if len(frames) == 1:
            return frames[0]
        day = pd.concat(frames, ignore_index=True)
        return day.drop_duplicates(subset=["platform", "post_id"], keep="first", ignore_index=True)

    def post_shards(self, platform: str, partition_key: str) -> list[str]:
        """Names of the day's shards written so far, sorted."""
        paths = self._shard_paths(platform, partition_key)
        return [path.rsplit("/", 2)[-2].removeprefix("list=") for path in paths]

    def _shard_paths(self, platform: str, partition_key: str) -> list[str]:
        day = self._path("posts", f"platform={platform}", f"date={partition_key}")
        selector = pafs.FileSelector(day, recursive=False, allow_not_found=True)
        shards = sorted(
            info.path
            for info in self._fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory and info.path.rsplit("/", 1)[-1].startswith("list=")
        )
        return [f"{directory}/posts.parquet" for directory in shards]

    def _read_file(self, path: str) -> pd.DataFrame:
        if self._fs.get_file_info(path).type == pafs.FileType.NotFound:
            return posts_to_frame([])
        return pq.read_table(path, filesystem=self._fs, schema=_POST_SCHEMA).to_pandas()

    # --- dead letters (raw payloads, for replay) ------------------------------------------------
    def dead_letter_path(self, source: str, batch_key: str) -> str:
        safe_source = source.replace("/", "_")
        return self._path("dead_letters", f"source={safe_source}", f"{batch_key}.jsonl")

    def write_dead_letters(self, source: str, batch_key: str, letters: Iterable[DeadLetter]) -> str | None:
        """Spool one batch's rejects with their raw payloads; replaces the batch on rerun."""
        lines = [letter.model_dump_json() for letter in letters]
        path = self.dead_letter_path(source, batch_key)
        if not lines:
            if self._fs.get_file_info(path).type != pafs.FileType.NotFound:
                self._fs.delete_file(path)
            return None
        data = ("\n".join(lines) + "\n").encode()

        def write(tmp: str) -> None:
            with self._fs.open_output_stream(tmp) as stream:
                stream.write(data)

        self._atomic_write(path, write)
        return path

    def read_dead_letters(self, source: str | None = None) -> list[DeadLetter]:
        """Every spooled dead letter (of ``source`` if given).

        Spool files are JSON Lines: records are split on ``\n`` only. ``str.splitlines`` would
        also split on U+2028, U+2029, U+0085 and other separators, which are ordinary data
        inside a JSON string (``model_dump_json`` does not escape them), and one such record
        would make every later read fail. A line that still does not parse (a torn write from
        an older version) is skipped with a warning rather than blocking every other letter.
        """
        root = self._path("dead_letters")
        if source is not None:
            root = self._path("dead_letters", f"source={source.replace('/', '_')}")
        selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
        letters: list[DeadLetter] = []
        infos = sorted(
            (i for i in self._fs.get_file_info(selector) if i.type == pafs.FileType.File),
            key=lambda i: i.path,
        )
        for info in infos:
            if not info.path.endswith(".jsonl") or info.base_name.startswith(".tmp-"):
                continue
            with self._fs.open_input_stream(info.path) as stream:
                data = stream.read()
            for number, line in enumerate(data.split(b"\n"), start=1):
                if not line.strip():
                    continue
                try:
                    letters.append(DeadLetter.model_validate_json(line))
                except ValueError:
                    log.warning("skipping unreadable dead-letter spool line %s:%d", info.path, number)
        return letters

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        """The spooled letter with this id, raw payload included (None if not spooled).

        File letters (``source:fingerprint:line``) are found in their file's spool directly;
        other ids by a scan of the source's spool.
        """
        source, _, rest = letter_id.partition(":")
        fingerprint = rest.rpartition(":")[0]
        if fingerprint and fingerprint != "h":
            path = self.dead_letter_path(source, f"fp={fingerprint}")
            if self._fs.get_file_info(path).type == pafs.FileType.File:
                with self._fs.open_input_stream(path) as stream:
                    for line in stream.read().split(b"\n"):
                        if line.strip():
                            try:
                                letter = DeadLetter.model_validate_json(line)
                            except ValueError:
                                continue
                            if letter.key == letter_id:
                                return letter
        return next((letter for letter in self.read_dead_letters(source) if letter.key == letter_id), None)
