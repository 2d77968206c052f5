"""Certificate: an ACM certificate for the site's domain, validated through the site's Route 53 zone.

ACM issues a DNS-validated certificate once a CNAME it chooses exists in the domain's zone. The component
requests the certificate, writes that CNAME into ``hosted_zone_id`` and waits for ACM to issue it
(``aws.acm.CertificateValidation``). ``arn`` is the ARN *as the validation returns it*: a listener given
``arn`` waits for the certificate to be issued, instead of failing on a certificate still pending validation.

ACM renews a DNS-validated certificate by itself for as long as the CNAME stays in the zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.base import Component
from components.load_balancer import LoadBalancerConfig

# ACM's validation CNAME changes only if the certificate does; a short TTL keeps a replaced certificate's
# validation from waiting on a cached answer.
VALIDATION_RECORD_TTL = 60


@dataclass(frozen=True)
class CertificateArgs:
    domain_name: str
    """The one name the certificate is for (``app.example.com``); no subject alternative names."""
    hosted_zone_id: str
    """Route 53 zone of ``domain_name``, where the validation record goes."""


class Certificate(Component):
    arn: pulumi.Output[str]
    """ARN of the issued certificate (known once validation has succeeded)."""
    domain_name: str

    def __init__(self, name: str, args: CertificateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        self.domain_name = args.domain_name

        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            domain_name=args.domain_name,
            validation_method="DNS",
            # A listener holds the certificate: ACM refuses to delete a certificate in use, so a replacement
            # (a new domain name) must exist, and the listener be moved to it, before the old one goes. This
            # is Pulumi's default (create before delete), spelled out because it must not change.
            opts=self.child(delete_before_replace=False),
        )
        # One domain and no SANs, so ACM asks for exactly one record: the first validation option. Its values
        # reach the record as Outputs; the record itself is declared here, not inside an apply, so a preview
        # shows it.
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-validation-record",
            zone_id=args.hosted_zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=VALIDATION_RECORD_TTL,
            # ACM derives the CNAME from the domain and the account, so every certificate of this account for
            # this domain asks for the same record: one may already exist (a certificate requested before, by
            # hand or by a stack now gone). Its value is the one ACM wants; taking it over is safe.
            allow_overwrite=True,
            opts=self.child(),
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=self.child(),
        )

        self.arn = validation.certificate_arn
        self.register_outputs({"arn": self.arn, "domain_name": self.domain_name})


def site_certificate_arn(
    name: str, config: LoadBalancerConfig, opts: pulumi.ResourceOptions | None = None
) -> pulumi.Input[str] | None:
    """The certificate of the site: a ``Certificate`` named ``name`` when the config asks the stack to create one
    (``domainName`` with ``hostedZoneId``), else the configured ``certificateArn`` (or none: plain HTTP)."""
    if config.creates_certificate:
        return Certificate(name, CertificateArgs(str(config.domain_name), str(config.hosted_zone_id)), opts).arn
    return config.certificate_arn
