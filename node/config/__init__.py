"""A node's configuration and everything it reads at start (SPEC §11).

- ``settings``: ``node.toml`` (``load_node_config``), read strictly;
- ``consent``: the node's consent rules;
- ``material``: the keys, certificate and signed federation documents it names, verified
  against each other (``load_material``);
- ``federation_file``: the federation file ``federation init`` reads;
- ``toml``: reading and writing TOML, and errors that name file, table and field.
"""

from node.config.consent import AutoGrant, ConsentDecision, ConsentMode, ConsentPolicy
from node.config.material import AT_REST_KEY_LEN, NodeMaterial, load_material, write_private_file
from node.config.settings import (
    DeliverySettings,
    FederationPaths,
    InboundSettings,
    KeyPaths,
    NodeConfig,
    RetentionSettings,
    WitnessSettings,
    load_node_config,
    write_node_config,
)
from node.config.toml import dump_toml

__all__ = [
    "AT_REST_KEY_LEN",
    "AutoGrant",
    "ConsentDecision",
    "ConsentMode",
    "ConsentPolicy",
    "DeliverySettings",
    "FederationPaths",
    "InboundSettings",
    "KeyPaths",
    "NodeConfig",
    "NodeMaterial",
    "RetentionSettings",
    "WitnessSettings",
    "dump_toml",
    "load_material",
    "load_node_config",
    "write_node_config",
    "write_private_file",
]
