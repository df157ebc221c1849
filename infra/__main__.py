"""Entry point of `pulumi up`: read the stack's config once, build the site, export its outputs."""

from __future__ import annotations

import pulumi
from order_infra.config import load_stack_config
from order_infra.program import build_site

for output_name, value in build_site(load_stack_config()).items():
    pulumi.export(output_name, value)
