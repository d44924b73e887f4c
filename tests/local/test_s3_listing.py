"""S3 prefix listings in the emulation: moto's answers, from the keys under the prefix only."""

from __future__ import annotations

import pytest
from moto.s3.utils import _VersionedKeyStore

from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET
from snakemake_executor_plugin_awsbatch_mpi.local.s3_listing import PrefixKeys


@pytest.fixture(scope="module")
def s3(emulation):
    client = emulation.boto3_client("s3")
    for i in range(30):
        client.put_object(Bucket=LOCAL_BUCKET, Key=f"listing/a/{i:02d}.txt", Body=b"x")
    client.put_object(Bucket=LOCAL_BUCKET, Key="listing/a/sub/deep.txt", Body=b"x")
    client.put_object(Bucket=LOCAL_BUCKET, Key="listing/ab.txt", Body=b"x")
    client.put_object(Bucket=LOCAL_BUCKET, Key="listing/a/00.txt", Body=b"second version")
    return client


def test_prefix_listings_answer_as_s3_does(s3):
    def keys(**kwargs):
        answer = s3.list_objects_v2(Bucket=LOCAL_BUCKET, **kwargs)
        return [o["Key"] for o in answer.get("Contents", [])], answer

    names, _ = keys(Prefix="listing/a/")
    assert names == [f"listing/a/{i:02d}.txt" for i in range(30)] + ["listing/a/sub/deep.txt"]
    names, answer = keys(Prefix="listing/a", Delimiter="/")
    assert names == ["listing/ab.txt"]
    assert [p["Prefix"] for p in answer["CommonPrefixes"]] == ["listing/a/"]
    names, answer = keys(Prefix="listing/a/", MaxKeys=10)
    assert len(names) == 10 and answer["IsTruncated"]
    rest, _ = keys(Prefix="listing/a/", ContinuationToken=answer["NextContinuationToken"])
    assert names + rest == keys(Prefix="listing/a/")[0]
    assert keys(Prefix="listing/a/00.txt/")[0] == []  # "is it a directory?" (the S3 plugin)
    size = s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="listing/a/00.txt")["Contents"][0]
    assert size["Size"] == len(b"second version")  # the latest version is listed
    legacy = s3.list_objects(Bucket=LOCAL_BUCKET, Prefix="listing/a/s")["Contents"]
    assert [o["Key"] for o in legacy] == ["listing/a/sub/deep.txt"]


def test_a_prefix_listing_never_walks_the_whole_bucket(s3, monkeypatch):
    """moto's own walk (the key store's items(), every key's latest version) is not used."""

    def walk(self):
        raise AssertionError("the whole bucket was walked for a prefix listing")

    monkeypatch.setattr(_VersionedKeyStore, "items", walk)
    answer = s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="listing/ab")
    assert [o["Key"] for o in answer["Contents"]] == ["listing/ab.txt"]


def test_prefix_keys_reads_only_names_under_the_prefix():
    store = _VersionedKeyStore()
    store["p/1"] = "old"
    store["p/1"] = "new"
    store["q/1"] = "other"
    assert PrefixKeys(store, "p/").items() == [("p/1", "new")]
