"""AWS partitions: which one a region is in, and what differs between them (ARNs, DNS suffix).

Pure data, imported by the program (``components/kms.py``, the config) and by the offline harness.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Partition:
    """Where a region's ARNs and service endpoints live: ``aws``/``amazonaws.com``, ``aws-us-gov``,
    ``aws-cn``/``amazonaws.com.cn``, ... (from the provider's ``getPartition``)."""

    name: str = "aws"
    dns_suffix: str = "amazonaws.com"


#: Region prefix -> its partition, as the provider's ``getPartition`` answers (the AWS SDK's endpoint data);
#: a region of none of these is in ``aws``. ``aws`` and ``aws-us-gov`` are the partitions pgha builds in.
COMMERCIAL = Partition()
PARTITIONS = {
    "us-gov-": Partition("aws-us-gov"),
    "cn-": Partition("aws-cn", "amazonaws.com.cn"),
    "us-isob-": Partition("aws-iso-b", "sc2s.sgov.gov"),
    "us-iso-": Partition("aws-iso", "c2s.ic.gov"),
    "eu-isoe-": Partition("aws-iso-e", "cloud.adc-e.uk"),
    "us-isof-": Partition("aws-iso-f", "csp.hci.ic.gov"),
}
SUPPORTED_PARTITIONS = ("aws", "aws-us-gov")


def partition_of(region: str) -> Partition:
    """The partition a region belongs to."""
    return next((part for prefix, part in PARTITIONS.items() if region.startswith(prefix)), COMMERCIAL)
