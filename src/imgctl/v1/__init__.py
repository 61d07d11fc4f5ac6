"""The imgctl gRPC API, generated from ``proto/imgctl/v1/imgctl.proto`` (do not edit by hand).

Regenerate with ``python -m grpc_tools.protoc -Iproto --python_out=src --pyi_out=src
--grpc_python_out=src proto/imgctl/v1/imgctl.proto``; ``tests/unit/test_proto.py`` fails when the
committed code is stale.
"""
