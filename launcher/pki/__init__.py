"""The mTLS PKI of remote deployments: a controller-side CA, server and client certificates, CRL, rotation.

Layout and procedures: certs/README.md and docs/pki.md. Entry points for other parts of the launcher:
`PkiLayout` (paths, and `host_files()` = what a host receives), `generate`, `check`, `revoke`.
"""

from launcher.pki.authority import Authority, LeafSpec
from launcher.pki.check import CheckReport, CheckRow, check
from launcher.pki.generate import GenerateOptions, GenerateResult, generate
from launcher.pki.keys import KeyType
from launcher.pki.layout import Kind, PkiLayout, default_certs_dir
from launcher.pki.plan import specs_from_inventory, specs_from_options
from launcher.pki.revoke import revoke

__all__ = [
    "Authority",
    "CheckReport",
    "CheckRow",
    "GenerateOptions",
    "GenerateResult",
    "KeyType",
    "Kind",
    "LeafSpec",
    "PkiLayout",
    "check",
    "default_certs_dir",
    "generate",
    "revoke",
    "specs_from_inventory",
    "specs_from_options",
]
