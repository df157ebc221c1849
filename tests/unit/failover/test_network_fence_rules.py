"""Which ingress rules of a database's security group admit the order service to PostgreSQL: the rules the
cloud-level fence revokes (recovery/failover/network_fence.py). Pure."""

from __future__ import annotations

from recovery.failover.network_fence import admitting_rules


def test_only_the_services_source_and_port_count() -> None:
    rules = [
        {"IpProtocol": "tcp", "FromPort": 5000, "ToPort": 6000, "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-2"}, {"GroupId": "sg-1"}]},
        {"IpProtocol": "udp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
    ]
    assert admitting_rules(rules, "sg-1", 5432) == [
        {"IpProtocol": "tcp", "FromPort": 5000, "ToPort": 6000, "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
    ]
