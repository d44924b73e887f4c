"""Array jobs: children see their index; the parent follows its children."""

from __future__ import annotations

from ._helpers import Aws


def test_array_children_get_their_index_and_the_parent_follows(aws: Aws, shell_def: str) -> None:
    fine = aws.submit_shell(
        "array-fine",
        shell_def,
        'echo "INDEX $AWS_BATCH_JOB_ARRAY_INDEX $AWS_BATCH_JOB_ID"',
        arrayProperties={"size": 2},
    )
    broken = aws.submit_shell(
        "array-broken", shell_def, "exit $AWS_BATCH_JOB_ARRAY_INDEX", arrayProperties={"size": 2}
    )
    after_fine = aws.submit_shell("after-fine", shell_def, "true", dependsOn=[{"jobId": fine}])
    after_broken = aws.submit_shell(
        "after-broken", shell_def, "true", dependsOn=[{"jobId": broken}]
    )

    parent = aws.wait(fine)
    assert parent["status"] == "SUCCEEDED"
    assert parent["arrayProperties"]["size"] == 2
    for index in range(2):
        child = aws.describe(f"{fine}:{index}")
        stream = child["container"]["logStreamName"]
        assert ":" not in stream
        assert aws.log_messages(stream) == [f"INDEX {index} {fine}:{index}"]

    broken_parent = aws.wait(broken)
    assert broken_parent["status"] == "FAILED"
    assert broken_parent["arrayProperties"]["statusSummary"]["FAILED"] == 1
    assert broken_parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 1
    assert aws.describe(f"{broken}:1")["container"]["exitCode"] == 1

    assert aws.wait(after_fine)["status"] == "SUCCEEDED"
    assert aws.wait(after_broken)["status"] == "FAILED"
