"""The pgha policy pack: ONLY assembles the rules of pgha/ci/policy into a PolicyPack.

Constructing ``PolicyPack`` starts the analyzer's gRPC server and never returns, so nothing
else lives here and no test imports this file; the rules are tested through
``pgha.ci.policy.evaluate``.
"""

import sys
from pathlib import Path

# the project root (this file's parent's parent) holds the pgha package with the rules
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from pgha.ci.policy import ALL_POLICIES

PolicyPack(name="pgha-aws-fsbp", policies=ALL_POLICIES, enforcement_level=EnforcementLevel.ADVISORY)
