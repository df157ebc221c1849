"""Site failover, planned switchover and failback: observe -> decide (pure) -> fence, promote, switch."""
