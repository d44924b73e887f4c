import math
import subprocess
import sys
from types import SimpleNamespace

import pytest

from snakemake_executor_plugin_awsbatch_mpi.settings import (
    RANGES,
    ExecutorSettings,
    SettingsError,
    check_settings,
)


def settings(**values):
    return ExecutorSettings(job_queue="q", **values)


def test_defaults_are_in_range():
    check_settings(settings())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("api_calls_per_second", 0.001),
        ("api_calls_per_second", 0),
        ("api_calls_per_second", -1),
        ("api_calls_per_second", math.nan),
        ("api_calls_per_second", math.inf),
        ("mpi_join_timeout", -1),
        ("log_tail_lines", -1),
        ("log_tail_lines", 0),
        ("default_memory_mib", 0),
        ("batch_attempts", 0),
        ("batch_attempts", 11),
        ("runnable_warning", -1),
        ("runnable_warning", 10_081),
        ("runnable_warning", math.nan),
    ],
)
def test_out_of_range_is_one_sentence_with_flag_value_and_range(name, value):
    low, high = next((lo, hi) for n, lo, hi, _ in RANGES if n == name)
    with pytest.raises(SettingsError) as info:
        check_settings(settings(**{name: value}))
    message = str(info.value)
    flag = "--awsbatch-mpi-" + name.replace("_", "-")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    assert message.startswith(f"{flag} is {shown}; allowed are {low:g} to {high:g}")
    assert message.endswith("Nothing was submitted.") and "\n" not in message


def test_every_numeric_setting_is_range_checked():
    numeric = {f.name for f in ExecutorSettings.__dataclass_fields__.values()
               if f.type in (int, float, "int", "float")}
    assert numeric == {name for name, *_ in RANGES}


def test_tags_setting():
    with pytest.raises(SettingsError, match="starts with 'aws:'"):
        check_settings(SimpleNamespace(tags={"aws:x": "1"}))
    with pytest.raises(SettingsError, match="48 tags; allowed are at most 47"):
        check_settings(SimpleNamespace(tags={f"k{i}": "v" for i in range(48)}))
    many = {f"k{i}": "v" for i in range(47)}
    check_settings(SimpleNamespace(tags=many))
    with pytest.raises(SettingsError, match="47 tags; allowed are at most 46 .* 4 run tags"):
        check_settings(SimpleNamespace(tags=many, fallback_job_queue="od"))


def test_secrets_setting_names_a_secret_arn():
    with pytest.raises(SettingsError, match="'TOKEN=hunter2' must point at a Secrets Manager"):
        check_settings(settings(secrets={"TOKEN": "hunter2"}))
    with pytest.raises(SettingsError, match="'1BAD' is not an environment variable name"):
        check_settings(settings(secrets={"1BAD": "arn:aws:ssm:us-east-1:123456789012:parameter/x"}))
    check_settings(settings(secrets={
        "TOKEN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:token-AbCdEf"}))


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--awsbatch-mpi-tags", "team"),
        ("--awsbatch-mpi-gpu-queues", "a100"),
        ("--awsbatch-mpi-secrets", "=arn:aws:ssm:us-east-1:123456789012:parameter/x"),
    ],
)
def test_a_malformed_mapping_flag_is_one_message_not_a_traceback(flag, value, tmp_path):
    """Snakemake parses these flags itself: the plugin's parser must fail as a WorkflowError."""
    (tmp_path / "Snakefile").write_text('rule a:\n    output: "x"\n    shell: "touch {output}"\n')
    run = subprocess.run(
        [
            sys.executable, "-m", "snakemake", "-n", "-j1", "--executor", "awsbatch-mpi",
            "--awsbatch-mpi-job-queue", "q", flag, value,
            "--default-storage-provider", "s3", "--default-storage-prefix", "s3://b/p",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "ValueError" not in run.stderr
    assert f"{flag}: '{value}' is not KEY=VALUE." in run.stderr
    assert "Nothing was submitted." in run.stderr
