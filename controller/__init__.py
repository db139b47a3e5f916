"""pvem's domain: desired-state store, Proxmox adapter, reconciler, stats and audit. Knows nothing of HTTP."""
