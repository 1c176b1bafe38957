"""Thin gRPC servicers: ``exchange`` (node to node, SPEC §11.1) and ``desk`` (officers, SPEC §11.8).

They translate wire messages (``node.codec``) and call ``node.services`` through the
``NodePort`` interface (``node.rpc.port``), which the runtime implements; they never
import the runtime.
"""
