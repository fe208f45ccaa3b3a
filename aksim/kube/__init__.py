"""Simulated Kubernetes API server: object store (:mod:`.store`) and its HTTP API (:mod:`.api`)."""
