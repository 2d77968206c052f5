"""Certificate on Pulumi mocks: an ACM certificate for one name, validated through Route 53, whose ``arn``
makes a listener wait for the validation.

ACM DNS validation: ACM issues the certificate once the CNAME it names exists in the domain's zone
(https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.certificate import VALIDATION_RECORD_TTL, Certificate, CertificateArgs, site_certificate_arn
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import assert_valid_request
from support.stacks import REGION, component, run, stack_config

ZONE = "Z0123456789ABCDEFGHIJ"
DOMAIN = "shop.example.com"
EXISTING = f"arn:aws:acm:{REGION}:{ACCOUNT_ID}:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def site(name: str, domain: str = DOMAIN, zone: str = ZONE) -> None:
    """A Certificate, and a listener holding its ``arn`` as the HTTPS listener does; exports the ``arn``."""
    certificate = Certificate(name, CertificateArgs(domain_name=domain, hosted_zone_id=zone))
    aws.lb.Listener(
        f"{name}-consumer",
        load_balancer_arn=bundles.arn("elasticloadbalancing", "loadbalancer/app/x/0123456789abcdef"),
        port=443,
        protocol="HTTPS",
        certificate_arn=certificate.arn,
        default_actions=[
            aws.lb.ListenerDefaultActionArgs(
                type="fixed-response",
                fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                    content_type="text/plain", status_code="200"
                ),
            )
        ],
    )
    pulumi.export(name, certificate.arn)


@pytest.fixture(scope="module")
def found() -> ProgramRun:
    return run(lambda: site("site"))


def test_one_dns_validated_certificate_for_exactly_the_domain(found: ProgramRun) -> None:
    certificate = found.one(rt.ACM_CERTIFICATE).props
    assert certificate["domainName"] == DOMAIN
    assert certificate["validationMethod"] == "DNS"
    assert not certificate.get("subjectAlternativeNames"), "one name, so ACM asks for one record"


def test_validation_record_is_the_one_acm_asks_for_in_the_sites_zone(found: ProgramRun) -> None:
    [option] = found.one(rt.ACM_CERTIFICATE).state["domainValidationOptions"]
    record = found.one(rt.ROUTE53_RECORD).props
    assert record["zoneId"] == ZONE
    assert (record["name"], record["type"]) == (option["resourceRecordName"], option["resourceRecordType"])
    assert record["records"] == [option["resourceRecordValue"]]
    assert record["ttl"] == VALIDATION_RECORD_TTL
    # ACM derives the CNAME from the domain and the account: every certificate of the account for the name asks
    # for the same record (dns-validation.html, "How CNAME records for ACM work").
    assert record["allowOverwrite"] is True, "the same CNAME serves every certificate of the account for the name"


def test_validation_waits_for_that_record_and_that_certificate(found: ProgramRun) -> None:
    certificate = found.one(rt.ACM_CERTIFICATE)
    record = found.one(rt.ROUTE53_RECORD)
    validation = found.one(rt.ACM_CERTIFICATE_VALIDATION)
    assert validation.props["certificateArn"] == certificate.state["arn"]
    assert validation.props["validationRecordFqdns"] == [record.state["fqdn"]]
    assert record.urn in validation.dependencies


def test_arn_is_the_validated_certificate_so_a_listener_waits_for_validation(found: ProgramRun) -> None:
    certificate = found.one(rt.ACM_CERTIFICATE)
    listener = found.one(rt.LB_LISTENER, "site-consumer")
    assert found.outputs["site"] == certificate.state["arn"]
    assert listener.props["certificateArn"] == certificate.state["arn"]
    assert found.one(rt.ACM_CERTIFICATE_VALIDATION).urn in listener.dependencies, "the ARN comes from the validation"
    assert certificate.urn not in listener.dependencies, "not straight from the (maybe pending) certificate"


def test_the_certificate_itself_is_not_protected_or_ignored(found: ProgramRun) -> None:
    # A domain change replaces it; nothing but the issued certificate is at stake, and ACM re-issues one.
    for reg in (
        found.one(rt.ACM_CERTIFICATE),
        found.one(rt.ROUTE53_RECORD),
        found.one(rt.ACM_CERTIFICATE_VALIDATION),
    ):
        assert not reg.protect and reg.ignore_changes == [], reg.name


def test_requests_are_valid_for_acm_and_route53(found: ProgramRun) -> None:
    certificate = found.one(rt.ACM_CERTIFICATE).props
    record = found.one(rt.ROUTE53_RECORD).props
    assert_valid_request(
        "acm",
        "RequestCertificate",
        {"DomainName": certificate["domainName"], "ValidationMethod": certificate["validationMethod"]},
    )
    change: dict[str, Any] = {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": record["name"],
            "Type": record["type"],
            "TTL": int(record["ttl"]),  # Pulumi carries every number as a float
            "ResourceRecords": [{"Value": v} for v in record["records"]],
        },
    }
    assert_valid_request(
        "route53", "ChangeResourceRecordSets", {"HostedZoneId": record["zoneId"], "ChangeBatch": {"Changes": [change]}}
    )


def test_the_enum_check_catches_a_validation_method_acm_does_not_have() -> None:
    # Guards the test above: the ValidationMethod enum is checked, not only the field's type.
    with pytest.raises(AssertionError, match="PHONE"):
        assert_valid_request("acm", "RequestCertificate", {"DomainName": DOMAIN, "ValidationMethod": "PHONE"})


# --- Component shape -----------------------------------------------------------------------------------


def children(found: ProgramRun, name: str) -> tuple[Registration, list[Registration]]:
    certificate = component(found, "Certificate", name)
    return certificate, found.children_of(certificate)


def test_every_child_is_named_after_the_component_and_parented_to_it(found: ProgramRun) -> None:
    certificate, kids = children(found, "site")
    assert {r.type for r in kids} == {rt.ACM_CERTIFICATE, rt.ROUTE53_RECORD, rt.ACM_CERTIFICATE_VALIDATION}
    assert all(r.name.startswith("site-") for r in kids), [r.name for r in kids]
    others = [r for r in found.resources if r is not certificate and r.type != rt.LB_LISTENER]
    assert {r.urn for r in kids} == {r.urn for r in others}


def test_two_certificates_do_not_collide() -> None:
    def build() -> None:
        site("shop", "shop.example.com")
        site("api", "api.example.com")

    found = run(build)
    assert {r.props["domainName"] for r in found.of_type(rt.ACM_CERTIFICATE)} == {"shop.example.com", "api.example.com"}
    urns = [r.urn for r in found.resources]
    assert len(urns) == len(set(urns))
    records = {r.props["name"] for r in found.of_type(rt.ROUTE53_RECORD)}
    assert len(records) == 2 and all(n.endswith(("shop.example.com.", "api.example.com.")) for n in records)
    assert [len(children(found, name)[1]) for name in ("shop", "api")] == [3, 3]


@pytest.mark.parametrize(
    ("values", "creates", "exported"),
    [
        ({"domainName": DOMAIN, "hostedZoneId": ZONE}, True, None),
        ({"domainName": DOMAIN, "certificateArn": EXISTING}, False, EXISTING),
        ({}, False, None),
    ],
    ids=["domain-and-zone-create-one", "existing-arn-is-used", "plain-http-has-none"],
)
def test_the_site_certificate_is_created_only_when_the_config_asks(
    values: dict[str, str], creates: bool, exported: str | None
) -> None:
    cfg = stack_config(values)

    def build() -> None:
        pulumi.export("arn", site_certificate_arn("certificate", cfg.load_balancer))

    found = run(build)
    assert len(found.of_type(rt.ACM_CERTIFICATE)) == int(creates)
    if creates:
        assert found.outputs["arn"] == found.one(rt.ACM_CERTIFICATE).state["arn"]
    else:
        assert found.outputs.get("arn") == exported
