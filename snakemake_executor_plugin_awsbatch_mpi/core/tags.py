"""Tags and secrets as text (`KEY=VALUE` items): parsing and the rules Batch applies to them.

Pure string checks shared by the settings (`--awsbatch-mpi-tags`, `--awsbatch-mpi-secrets`),
the rule resources (`awsbatch_tags`, `awsbatch_secrets`) and the tags the plugin writes itself.
"""

from __future__ import annotations

import re


def parse_tags(text: str, what: str = "tags") -> dict[str, str]:
    """Parse `KEY=VALUE` items separated by commas or whitespace."""
    tags: dict[str, str] = {}
    for item in text.replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what}: '{item}' is not KEY=VALUE.")
        if len(key) > 128 or len(value) > 256:
            raise ValueError(f"{what}: '{key}' is too long (keys <= 128, values <= 256 chars).")
        tags[key] = value
    return tags


# Batch's tag rules (User Guide, "Tag restrictions"): letters, digits, spaces and + - = . _ : / @;
# no key or value may start with aws: in any case; at most 50 tags per resource.
TAG_SPECIALS = frozenset("+-=._:/@ ")

MAX_TAGS = 50


def _tag_text_ok(text: str) -> bool:
    return all(ch.isalnum() or ch in TAG_SPECIALS for ch in text)


def tag_problem(key: str, value: str) -> str | None:
    """Why Batch would refuse the tag `key=value`, or None."""
    for what, text in (("key", key), ("value", value)):
        if text.lower().startswith("aws:"):
            return f"tag {what} '{text}' starts with 'aws:', which AWS reserves for itself"
        if not _tag_text_ok(text):
            bad = "".join(sorted({ch for ch in text if not _tag_text_ok(ch)}))
            return (
                f"tag {what} '{text}' holds characters Batch refuses ({bad!r}); tags may use "
                "letters, digits, spaces and + - = . _ : / @"
            )
    return None


def safe_tag_value(text: str) -> str:
    """A value Batch accepts, for tags the plugin writes (e.g. a directory name)."""
    cleaned = "".join(ch if _tag_text_ok(ch) else "_" for ch in text)[:256]
    return "_" + cleaned[1:] if cleaned.lower().startswith("aws:") else cleaned


SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]+:\d{12}:\S+$")

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_secrets(text: str, what: str) -> dict[str, str]:
    """`NAME=ARN ...` → {NAME: ARN}; each ARN names a Secrets Manager secret or SSM parameter."""
    secrets = parse_tags(text, what)
    for name, arn in secrets.items():
        problem = secret_problem(name, arn)
        if problem:
            raise ValueError(f"{what}: {problem}")
    return secrets


def secret_problem(name: str, arn: str) -> str | None:
    if not ENV_NAME.match(name):
        return f"'{name}' is not an environment variable name"
    if not SECRET_ARN.match(arn):
        return (
            f"'{name}={arn}' must point at a Secrets Manager secret "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME) or an SSM parameter "
            "(arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)"
        )
    return None
