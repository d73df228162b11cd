"""Command-line options several commands share (kept free of heavy imports: `casaflow --help` stays fast)."""


def add_incident_arguments(parser) -> None:
    """The incident options `casaflow up` and `casaflow run` share."""
    parser.add_argument("--webhook", action="append", default=[], metavar="URL",
                        help="POST every incident event as JSON to URL (repeatable; retried on failure)")
    parser.add_argument("--evidence-retention-days", type=float, default=30.0,
                        help="delete evidence clips and snapshots older than this (0: keep them)")


def incident_options(args) -> dict:
    """LaunchOptions fields from `add_incident_arguments`; raises ValueError on a bad URL or retention."""
    from casaflow.alerts import check_webhook_url

    if args.evidence_retention_days < 0:
        raise ValueError(f"--evidence-retention-days must be >= 0, got {args.evidence_retention_days}")
    return {
        "webhooks": tuple(check_webhook_url(url) for url in args.webhook),
        "evidence_retention_s": args.evidence_retention_days * 86400.0 or None,
    }
