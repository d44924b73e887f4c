from snakemake_executor_plugin_awsbatch_mpi.core.environment import filter_environment, is_secret


def test_credentials_and_storage_secrets_dropped():
    env = {
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_SESSION_TOKEN": "t",
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "k",
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "k2",
        "SNAKEMAKE_STORAGE_S3_TOKEN": "t2",
        "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "SNAKEMAKE_STORAGE_S3_REGION": "us-east-1",
        "MY_SETTING": "1",
        "GITHUB_TOKEN": "ghp",
    }
    kept, dropped = filter_environment(env)
    assert kept == {
        "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "SNAKEMAKE_STORAGE_S3_REGION": "us-east-1",
        "MY_SETTING": "1",
    }
    assert "AWS_SECRET_ACCESS_KEY" in dropped and "GITHUB_TOKEN" in dropped


def test_is_secret_names():
    assert is_secret("aws_profile")
    assert is_secret("DB_PASSWORD")
    assert not is_secret("THREADS")
