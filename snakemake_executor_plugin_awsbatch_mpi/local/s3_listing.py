"""S3 prefix listings whose cost does not grow with the bucket, as on AWS.

moto's ListObjects copies the whole key store of the bucket and fetches every key's latest
version in Python before it filters by prefix, so a listing costs more the more objects the
bucket holds: 10 ms against 4.4 ms for a HeadObject with 3,000 objects in the bucket, and
more with every run that shares it. Snakemake's S3 storage plugin lists `<key>/` (is the
output a directory?) before each `mtime` and `size`, twice per finished job, so a client
slowed down as the bucket filled. On AWS a prefix listing does not depend on the bucket's size.

`bucket_view` hands moto's own `list_objects` a view of the bucket that holds only the keys
under the prefix; moto then does what it always does (delimiters, markers, truncation), on
those keys alone. `patches.py` installs it with the other moto patches.
"""

from __future__ import annotations

from typing import Any


class PrefixKeys:
    """A bucket's key store seen through a prefix: `items()` is all moto's listing reads."""

    def __init__(self, store: dict[str, list[Any]], prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    def items(self) -> list[tuple[str, Any]]:
        # dict.items on the raw store: names with their version lists, copied in C (the store
        # may change while a request lists it); the latest version is the listed one.
        prefix = self._prefix
        return [
            (name, versions[-1])
            for name, versions in list(dict.items(self._store))
            if name.startswith(prefix) and versions
        ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class BucketView:
    """A bucket whose `keys` are only those under a prefix; everything else is the bucket's."""

    def __init__(self, bucket: Any, prefix: str) -> None:
        self._bucket = bucket
        self.keys = PrefixKeys(bucket.keys, prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bucket, name)


def bucket_view(bucket: Any, prefix: str | None, plain_bucket: type) -> Any:
    """What moto's `list_objects` should list: a view for a prefix listing of a plain bucket
    (`plain_bucket`, moto's FakeBucket, exactly: special buckets keep moto's own checks)."""
    if not prefix or type(bucket) is not plain_bucket:
        return bucket
    return BucketView(bucket, prefix)


__all__ = ["BucketView", "PrefixKeys", "bucket_view"]
