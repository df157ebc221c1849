"""botocore's data files read into plain dicts, with the endpoints table cut to the services the toolkit
calls (recovery.drivers.aws_models): the same endpoints as botocore's own reading, less memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import botocore
import botocore.session
import pytest

from recovery.drivers.aws import new_client
from recovery.drivers.aws_models import CLIENT_ENDPOINT_PREFIXES, ENDPOINT_PREFIXES, read_endpoints

ENDPOINTS_JSON = Path(botocore.__file__).parent / "data" / "endpoints.json"
REPO = Path(__file__).resolve().parents[3]


def test_the_cut_table_is_botocores_table_without_the_other_services() -> None:
    text = ENDPOINTS_JSON.read_text()
    whole = json.loads(text)
    for partition in whole["partitions"]:
        partition["services"] = {k: v for k, v in partition["services"].items() if k in ENDPOINT_PREFIXES}
    assert read_endpoints(text, ENDPOINT_PREFIXES) == whole
    assert {"s3", "kms", "sts"} <= set(whole["partitions"][0]["services"])


def test_any_json_layout_is_read_and_broken_json_is_refused() -> None:
    text = (
        '\n{ "version":3 ,"partitions" :[ {"services":{"s3":{"a":[1,{"b":"x\\"y"}]},"lambda":{}},'
        '"dnsSuffix":"c"},{} ],"e":[]}  '
    )
    assert read_endpoints(text, {"s3"}) == {
        "version": 3,
        "partitions": [{"services": {"s3": {"a": [1, {"b": 'x"y'}]}}, "dnsSuffix": "c"}, {}],
        "e": [],
    }
    for broken in ('{"partitions": [{"services": {"s3": {}]}', '{"a": 1} x', '{"a" 1}', "[]", ""):
        with pytest.raises(ValueError):
            read_endpoints(broken, {"s3"})


def test_the_prefixes_are_the_service_models_own() -> None:
    loader = botocore.session.get_session().get_component("data_loader")
    for client, prefix in CLIENT_ENDPOINT_PREFIXES.items():
        assert loader.load_service_model(client, "service-2")["metadata"]["endpointPrefix"] == prefix


def test_every_client_the_toolkit_makes_is_in_the_table() -> None:
    made = set()
    for source in (REPO / "recovery").rglob("*.py"):
        made |= set(re.findall(r"""client\(\s*["']([a-z0-9-]+)["']""", source.read_text()))
    assert made, "no client calls found: the pattern no longer matches the code"
    assert made <= set(CLIENT_ENDPOINT_PREFIXES), made - set(CLIENT_ENDPOINT_PREFIXES)


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1"])
def test_endpoints_are_those_botocores_own_reading_gives(region: str) -> None:
    own = botocore.session.get_session()  # botocore's own loader and reading
    for client in (*CLIENT_ENDPOINT_PREFIXES, "lambda"):
        ours = new_client(client, region, endpoint_url=None)
        theirs = own.create_client(
            client, region_name=region, aws_access_key_id="a", aws_secret_access_key="b"
        )
        assert ours.meta.endpoint_url == theirs.meta.endpoint_url, client
        assert ours.meta.config.signature_version == theirs.meta.config.signature_version


# The resident size a fresh interpreter's first S3 client adds, and the type the service model is read as.
_PROBE = """
from pathlib import Path
import recovery.drivers.aws as aws
from recovery.targets.model import AwsEndpoint

def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4
before = resident()
aws.AwsDriver(AwsEndpoint(endpoint_url="http://127.0.0.1:9")).s3("eu-west-1")
print(resident() - before, type(aws._models.load_service_model("s3", "service-2")).__name__)
"""


def test_the_first_s3_client_costs_about_half_what_botocores_reading_does() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    cost, kind = done.stdout.split()
    assert kind == "dict"
    assert int(cost) < 10 * 1024, f"{cost} KiB (15.1 MiB with botocore's own reading)"
