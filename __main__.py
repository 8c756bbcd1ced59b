"""pgha: highly-available PostgreSQL on AWS. Reads config, builds the stack, exports its outputs."""

from pathlib import Path

import pulumi

from components.config import load_config
from components.stack import build_stack

for name, value in build_stack(load_config(), Path(__file__).resolve().parent).items():
    pulumi.export(name, value)
