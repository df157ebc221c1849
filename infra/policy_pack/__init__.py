"""The order-recovery policy pack (pulumi-policy): guardrails every stack of this project must pass."""
