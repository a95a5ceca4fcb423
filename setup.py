"""Only the native extension lives here; everything else is in pyproject.toml.

``irods_ingest._listing`` (first-sync directory listing, see irods_ingest/listing.py) is
optional: without a C compiler the install still succeeds and the pure-Python listing,
which gives the same result, is used instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "irods_ingest._listing",
            sources=["worker/irods_ingest/_listing.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
