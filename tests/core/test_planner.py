import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.planner import (
    DEPENDS_ON_ROOM,
    PlanError,
    dropped_warning,
    plan_job,
    run_tags,
    split_environment,
)
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.spec import QueueInfo
from snakemake_executor_plugin_awsbatch_mpi.core.validation import MAX_SUBMIT_BYTES

SETTINGS = TranslationSettings(
    "cpu", "img", execution_role_arn="arn:aws:iam::123456789012:role/exec"
)
TOKEN_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:token-AbCdEf"
ENV = split_environment({"PLAIN": "1"}, ())


def plan(request=None, settings=SETTINGS, command=("/bin/bash", "-c", "true"), env=ENV,
         **kwargs):
    return plan_job(request or JobRequest("r", 1, {}), settings, QueueInfo("cpu"), command,
                    env, "my workflow (v2)", "run1", validate=validate_request, **kwargs)


def test_payloads_are_valid_for_botocore_and_tags_are_batch_safe():
    result = plan()
    submit = result.submit("arn:aws:batch:us-east-1:123456789012:job-definition/x:1")
    assert validate_request("SubmitJob", submit) == []
    assert validate_request("RegisterJobDefinition", result.register) == []
    assert submit["tags"]["snakemake-workflow"] == "my workflow _v2_"
    assert run_tags("r", "a", "aws:x")["snakemake-workflow"] == "_ws:x"


def test_a_command_beyond_30_kib_is_refused_with_advice():
    command = ("/bin/bash", "-c", "snakemake --config blob=" + "x" * 40_000)
    with pytest.raises(PlanError, match=r"Rule 'r': .* 4\d,\d\d\d bytes.*--configfile"):
        plan(command=command)
    # just under the limit passes, and the room for dependsOn is counted when asked for
    room = MAX_SUBMIT_BYTES - len(str(plan().submit())) - 600
    fits = ("/bin/bash", "-c", "x" * room)
    plan(command=fits)
    with pytest.raises(PlanError, match="30 KiB"):
        plan(command=fits, depends_on_room=DEPENDS_ON_ROOM)


def test_declared_secret_needs_a_source():
    env = split_environment({"DECLARED_TOKEN": "hunter2", "OTHER_TOKEN": "x"},
                            ["DECLARED_TOKEN"])
    with pytest.raises(PlanError, match="DECLARED_TOKEN .*--awsbatch-mpi-secrets DECLARED_T"):
        plan(env=env)
    assert "OTHER_TOKEN" in dropped_warning(env) and "DECLARED" not in dropped_warning(env)
    given = plan(JobRequest("r", 1, {"awsbatch_secrets": f"DECLARED_TOKEN={TOKEN_ARN}"}),
                 env=env)
    props = given.register["containerProperties"]
    assert props["secrets"] == [{"name": "DECLARED_TOKEN", "valueFrom": TOKEN_ARN}]
    assert props["executionRoleArn"].endswith("role/exec")
    assert "hunter2" not in str(given.submit()) + str(given.register)


def test_secrets_change_the_definition_and_win_over_plain_variables():
    env = split_environment({"API_KEY_FILE": "/x", "PLAIN": "1"}, ())
    settings = TranslationSettings("cpu", "img", execution_role_arn=SETTINGS.execution_role_arn,
                                   secrets={"PLAIN": TOKEN_ARN})
    with_secret = plan(settings=settings, env=env)
    assert with_secret.definition != plan(env=env).definition  # part of the content hash
    assert "PLAIN" not in dict(with_secret.spec.environment)
