"""pvem's HTTP layer: routing, auth, validation, envelopes and OpenAPI. Never talks to Proxmox."""
