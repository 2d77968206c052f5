"""Certificate on Pulumi mocks: an ACM certificate for one name, validated through Route 53, whose ``arn``
makes a listener wait for the validation.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from components.certificate import VALIDATION_RECORD_TTL
from offline.engine import ProgramRun, Registration, run_program
from offline.stack_files import StackFiles

REGION = "eu-west-1"
COMPONENT = "gitlab-fargate:index:Certificate"
CERTIFICATE = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
LISTENER = "aws:lb/listener:Listener"
ZONE = "Z0123456789ABCDEFGHIJ"

# One Certificate per entry of `test:sites`, and a listener holding its `arn` as an HTTPS listener would.
PROGRAM = """
import pulumi
import pulumi_aws as aws
from components.certificate import Certificate, CertificateArgs

for site in pulumi.Config("test").require_object("sites"):
    certificate = Certificate(site["name"], CertificateArgs(domain_name=site["domain"], hosted_zone_id=site["zone"]))
    aws.lb.Listener(
        f"{site['name']}-consumer",
        load_balancer_arn="arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/x/0123456789abcdef",
        port=443,
        protocol="HTTPS",
        certificate_arn=certificate.arn,
        default_actions=[aws.lb.ListenerDefaultActionArgs(type="fixed-response", fixed_response={
            "content_type": "text/plain", "status_code": "200"})],
    )
    pulumi.export(site["name"], certificate.arn)
"""


def run_sites(tmp_path: Path, *sites: dict[str, str]) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {"aws:region": REGION, "test:sites": json.dumps(list(sites))}
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


def site(name: str = "site", domain: str = "shop.example.com", zone: str = ZONE) -> dict[str, str]:
    return {"name": name, "domain": domain, "zone": zone}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_sites(tmp_path_factory.mktemp("certificate"), site())


def test_one_dns_validated_certificate_for_exactly_the_domain(run: ProgramRun) -> None:
    certificate = run.one(CERTIFICATE).props
    assert certificate["domainName"] == "shop.example.com"
    assert certificate["validationMethod"] == "DNS"
    assert not certificate.get("subjectAlternativeNames"), "one name, so ACM asks for one record"


def test_validation_record_is_the_one_acm_asks_for_in_the_sites_zone(run: ProgramRun) -> None:
    [option] = run.one(CERTIFICATE).state["domainValidationOptions"]
    record = run.one(RECORD).props
    assert record["zoneId"] == ZONE
    assert (record["name"], record["type"]) == (option["resourceRecordName"], option["resourceRecordType"])
    assert record["records"] == [option["resourceRecordValue"]]
    assert record["ttl"] == VALIDATION_RECORD_TTL
    assert record["allowOverwrite"] is True, "the same CNAME serves every certificate of the account for the name"


def test_validation_waits_for_that_record_and_that_certificate(run: ProgramRun) -> None:
    certificate = run.one(CERTIFICATE)
    record = run.one(RECORD)
    validation = run.one(VALIDATION).props
    assert validation["certificateArn"] == certificate.state["arn"]
    assert validation["validationRecordFqdns"] == [record.state["fqdn"]]
    assert record.urn in run.one(VALIDATION).dependencies


def test_arn_is_the_validated_certificate_so_a_listener_waits_for_validation(run: ProgramRun) -> None:
    certificate = run.one(CERTIFICATE)
    listener = run.one(LISTENER, "site-consumer")
    assert run.outputs["site"] == certificate.state["arn"]
    assert listener.props["certificateArn"] == certificate.state["arn"]
    assert run.one(VALIDATION).urn in listener.dependencies, "the ARN comes from the validation"
    assert certificate.urn not in listener.dependencies, "not straight from the (maybe pending) certificate"


def test_the_certificate_itself_is_not_protected_or_ignored(run: ProgramRun) -> None:
    # A domain change replaces it; nothing but the issued certificate is at stake, and ACM re-issues one.
    for reg in (run.one(CERTIFICATE), run.one(RECORD), run.one(VALIDATION)):
        assert not reg.protect and reg.ignore_changes == [], reg.name


def test_requests_are_valid_for_acm_and_route53(run: ProgramRun) -> None:
    session = botocore.session.get_session()
    certificate = run.one(CERTIFICATE).props
    record = run.one(RECORD).props
    calls: list[tuple[str, str, dict[str, Any]]] = [
        (
            "acm",
            "RequestCertificate",
            {"DomainName": certificate["domainName"], "ValidationMethod": certificate["validationMethod"]},
        ),
        (
            "route53",
            "ChangeResourceRecordSets",
            {
                "HostedZoneId": record["zoneId"],
                "ChangeBatch": {
                    "Changes": [
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": record["name"],
                                "Type": record["type"],
                                "TTL": int(record["ttl"]),  # Pulumi carries every number as a float
                                "ResourceRecords": [{"Value": v} for v in record["records"]],
                            },
                        }
                    ]
                },
            },
        ),
    ]
    for service, operation, params in calls:
        shape = session.get_service_model(service).operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    methods = session.get_service_model("acm").shape_for("ValidationMethod").enum
    assert certificate["validationMethod"] in methods


# --- Component shape -----------------------------------------------------------------------------------


def component_children(run: ProgramRun, name: str) -> tuple[Registration, list[Registration]]:
    component = run.one(COMPONENT, name)
    return component, run.children_of(component)


def test_every_child_is_named_after_the_component_and_parented_to_it(run: ProgramRun) -> None:
    component, children = component_children(run, "site")
    assert {r.type for r in children} == {CERTIFICATE, RECORD, VALIDATION}
    assert all(r.name.startswith("site-") for r in children), [r.name for r in children]
    others = [r for r in run.resources if r is not component and r.type != LISTENER]
    assert {r.urn for r in children} == {r.urn for r in others}


def test_two_certificates_do_not_collide(tmp_path: Path) -> None:
    run = run_sites(tmp_path, site("shop", "shop.example.com"), site("api", "api.example.com"))
    assert {r.props["domainName"] for r in run.of_type(CERTIFICATE)} == {"shop.example.com", "api.example.com"}
    urns = [r.urn for r in run.resources]
    assert len(urns) == len(set(urns))
    records = {r.props["name"] for r in run.of_type(RECORD)}
    assert len(records) == 2 and all(n.endswith(("shop.example.com.", "api.example.com.")) for n in records)
