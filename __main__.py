"""pgha: highly-available PostgreSQL on AWS. Reads config, builds the stack, exports its outputs."""

import pulumi

from components.config import load_config
from components.stack import build_stack

for name, value in build_stack(load_config()).items():
    pulumi.export(name, value)
