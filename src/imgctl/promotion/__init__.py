"""Promotion of artefacts between environments: container images and static web bundles."""
