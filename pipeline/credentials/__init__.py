"""Seller contexts' KSeF credentials from files and the environment (I/O lives here).

The types and byte parsing are in `pipeline.ksef.credentials` (no file access there);
this package reads files, checks their permissions and reloads them when they change.
Entry point: `CredentialStore` (file format in `config`).
"""

from pipeline.credentials.config import ContextEntry, parse_credentials_file
from pipeline.credentials.store import ContextStatus, CredentialStore, load_entry

__all__ = ["ContextEntry", "ContextStatus", "CredentialStore", "load_entry",
           "parse_credentials_file"]
