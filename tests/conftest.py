"""Suite-wide fixtures. Each real service has its own fixture module under testsupport/."""

pytest_plugins = [
    "testsupport.redis_fixtures",
    "testsupport.irods_fixtures",
    "testsupport.kube_fixtures",
    "testsupport.operator_fixtures",
    "testsupport.helm_fixtures",
    "testsupport.ingest_fixtures",
    "testsupport.s3_fixtures",
]
