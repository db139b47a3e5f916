"""The reconciler: observe Proxmox, diff against desired state, act, record. Level-triggered."""
