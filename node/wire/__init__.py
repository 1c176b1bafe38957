"""Generated protobuf/gRPC modules for package intelshare.v1.

Do not edit: regenerate with `python proto/generate.py`.
"""

GRPCIO_TOOLS_VERSION = "1.85.1"
