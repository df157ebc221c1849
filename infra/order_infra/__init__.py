"""The Pulumi program of order-recovery: one stack per site (primary, standby) and their backup storage."""
