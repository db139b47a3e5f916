"""Manifests: declarative YAML/JSON documents describing the caller's desired VMs, loaded, validated and planned."""
