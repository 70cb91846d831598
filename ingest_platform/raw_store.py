"""The raw store: where data with personal information lives, outside the warehouse.

Raw scraped posts and raw dead-letter payloads are written as parquet/JSONL under one URI: a
local directory by default, any ``pyarrow.fs`` URI (``s3://bucket/prefix``, ``gs://…``) in
production, through the same interface. One file per (dataset, partition): a rerun replaces it
atomically (write to a temporary name, then move), so reruns never duplicate. A day of TikTok
posts is sharded by target list (``date=D/list=NAME/posts.parquet``): each list's scrape run
writes only its own file, so runs of the same day on different workers never overwrite each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ingest_platform.models import POST_COLUMNS, DeadLetter, Post

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

    def read_dead_letters(self) -> list[DeadLetter]:
        selector = pafs.FileSelector(self._path("dead_letters"), recursive=True, allow_not_found=True)
        letters: list[DeadLetter] = []
        for info in self._fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.path.endswith(".jsonl"):
                continue
            with self._fs.open_input_stream(info.path) as stream:
                for line in stream.read().decode().splitlines():
                    if line.strip():
                        letters.append(DeadLetter.model_validate(json.loads(line)))
        return letters
