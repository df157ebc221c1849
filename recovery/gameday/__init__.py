"""Game days: Chaos Toolkit experiments against a target, measured against their objectives, reported."""
