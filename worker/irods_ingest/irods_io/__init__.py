"""iRODS adapter: sessions and catalog/data operations over python-irodsclient.

This subpackage is the only part of the engine that imports ``irods``.
"""
