"""The root volume of a compute environment's instances, from its launch template (pure).

On EC2 every job on an instance shares the instance's root volume: 30 GiB with the
ECS-optimized AMI unless the compute environment's launch template maps a larger one. The AWS
shells (the executor's `BatchClient`, `doctor`) read the launch templates with
DescribeLaunchTemplateVersions and hand the answers in; `batch.queues` puts the result into
`QueueInfo.disks`, which `disk.py` judges rules against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The root volume of the ECS-optimized AMIs Batch launches (Amazon Linux 2 and 2023, also the
# GPU variant) when no launch template maps a larger one.
AMI_DEFAULT_ROOT_GIB = 30
# Device names of the volume the containers' files live on: the root volume of those AMIs
# (and of most Linux AMIs), and the Docker data volume of the Amazon Linux 1 ECS AMI.
ROOT_DEVICES = ("/dev/xvda", "/dev/sda1", "/dev/xvdcz")


@dataclass(frozen=True)
class LaunchTemplateRef:
    """The launch template (and version) a compute environment launches its instances with."""

    template_id: str | None
    template_name: str | None
    version: str = "$Default"

    def __str__(self) -> str:
        return f"{self.template_id or self.template_name} (version {self.version})"

    def request(self) -> dict[str, Any]:
        """The DescribeLaunchTemplateVersions parameters that read this version."""
        params: dict[str, Any] = {"Versions": [self.version]}
        if self.template_id:
            params["LaunchTemplateId"] = self.template_id
        else:
            params["LaunchTemplateName"] = self.template_name
        return params


def template_ref(template: Mapping[str, Any]) -> LaunchTemplateRef | None:
    """A compute environment's `launchTemplate` (id or name, and version) as a reference."""
    template_id = template.get("launchTemplateId")
    template_name = template.get("launchTemplateName")
    if not template_id and not template_name:
        return None
    return LaunchTemplateRef(
        template_id=str(template_id) if template_id else None,
        template_name=str(template_name) if template_name else None,
        version=str(template.get("version") or "$Default"),
    )


def launch_template_ref(env: Mapping[str, Any]) -> LaunchTemplateRef | None:
    """The `computeResources.launchTemplate` of a DescribeComputeEnvironments item, if any."""
    return template_ref((env.get("computeResources") or {}).get("launchTemplate") or {})


def mapped_root_gib(version: Mapping[str, Any] | None) -> int | None:
    """The root volume size a DescribeLaunchTemplateVersions item maps, None when it maps none."""
    data = (version or {}).get("LaunchTemplateData") or {}
    for mapping in data.get("BlockDeviceMappings") or []:
        size = (mapping.get("Ebs") or {}).get("VolumeSize")
        if mapping.get("DeviceName") in ROOT_DEVICES and size:
            return int(size)
    return None


@dataclass(frozen=True)
class RootVolume:
    """The root volume of the instances of one compute environment (shared by their jobs)."""

    environment: str
    gib: int
    # How the size is known, completing "... have N GiB (<source>)".
    source: str


def root_volume_of(
    env: Mapping[str, Any], templates: Mapping[LaunchTemplateRef, Mapping[str, Any] | None]
) -> RootVolume | None:
    """The root volume of an EC2 compute environment; None on Fargate, for unmanaged
    environments and when its launch template could not be read (absent from `templates`)."""
    resources = env.get("computeResources")
    if env.get("type") == "UNMANAGED" or resources is None:
        return None
    if str(resources.get("type", "EC2")).startswith("FARGATE"):
        return None
    name = str(env.get("computeEnvironmentName", "?"))
    ref = launch_template_ref(env)
    if ref is None:
        return RootVolume(
            name,
            AMI_DEFAULT_ROOT_GIB,
            f"the ECS-optimized AMI's default: compute environment '{name}' has no launch "
            "template",
        )
    if ref not in templates:
        return None
    size = mapped_root_gib(templates[ref])
    if size is None:
        return RootVolume(
            name,
            AMI_DEFAULT_ROOT_GIB,
            f"the ECS-optimized AMI's default: launch template {ref} of compute environment "
            f"'{name}' does not size the root volume",
        )
    return RootVolume(name, size, f"launch template {ref} of compute environment '{name}'")
